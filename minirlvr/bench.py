"""`python -m minirlvr.bench <target> [options]`: benchmarks that report ratios against a baseline measured
in the same run. Each target lives beside the code it measures; this file only dispatches."""

import importlib
import sys
import time

import torch

from minirlvr.malloc import return_freed_memory

TARGETS = {
    "verifiers": "minirlvr.verifiers.bench",  # checks/s vs the reference IFEval and IFBench scorers
    "logprob": "minirlvr.kernels.bench_logprob",  # fused token log-probs vs full logits
    "attention": "minirlvr.kernels.bench_attention",  # attention mass vs eager output_attentions
    "sampler": "minirlvr.bench_sampler",  # own sampler vs model.generate
    "judge": "minirlvr.bench_judge",  # LLM judge on the policy's base (adapter off) vs a separate judge copy
    "step": "minirlvr.bench_step",  # one GRPO step of the kit's loop vs TRL's GRPOTrainer, same model and settings
    "multiif": "minirlvr.bench_multiif",  # Multi-IF checks/s vs the official scorer; hostile 1 MB responses
}


# ---------------------------------------------------------------------------------------------- shared measures


def run_child(module, argv, what):
    """The last JSON line printed by `python -m module argv` in a fresh process (clean peak memory, nothing left
    cached by an earlier measurement); a failure raises with the child's stderr."""
    import json
    import subprocess

    res = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def sync(device):
    """Wait for queued GPU work, so that a clock reading covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    """Wall seconds of one call of fn, GPU work included."""
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakMemory:
    """Bytes at peak above the level at construction: the CUDA allocator's peak, or on a CPU the process's
    resident-set high-water mark (tracemalloc does not see torch's allocations), after `return_freed_memory()`.
    Run each measurement in a fresh process, after its timing: the CPU figure counts every page the process
    touches. mmap_threshold: see return_freed_memory (smaller: small tensors are measured too, at a cost in speed)."""

    def __init__(self, device, mmap_threshold=64 * 1024):
        self.cuda = device.type == "cuda"
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            return_freed_memory(mmap_threshold)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets the RSS high-water mark (VmHWM) to the current RSS, Linux >= 4.0
            self.base = _status_kib("VmRSS") * 1024

    def peak(self):
        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - self.base
        return _status_kib("VmHWM") * 1024 - self.base


def _summary(module):
    """The first sentence of a target's docstring, after its "`command`: " lead, read without importing the target."""
    import ast
    import importlib.util

    try:
        with open(importlib.util.find_spec(module).origin, encoding="utf-8") as f:
            doc = ast.get_docstring(ast.parse(f.read())) or ""
    except (ImportError, AttributeError, OSError, SyntaxError):
        return ""
    text = " ".join(doc.split("\n\n")[0].split()).split("`: ", 1)[-1]
    return text.split(". ", 1)[0].rstrip(".") + "."


def usage():
    import textwrap

    width = max(map(len, TARGETS))
    lines = ["usage: python -m minirlvr.bench <target> [options]      (or: minirlvr bench <target> ...)", "",
             "Benchmarks that report ratios against a baseline measured in the same run.", "", "targets:"]
    for name, module in TARGETS.items():
        lines += textwrap.wrap(_summary(module), 118, initial_indent=f"  {name:<{width}}  ",
                               subsequent_indent=" " * (width + 4))
    return "\n".join(lines + ["", "minirlvr bench <target> --help shows a target's options."])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(usage())
        return
    if not argv or argv[0] not in TARGETS:
        sys.exit((f"error: unknown target {argv[0]!r}\n\n" if argv else "") + usage())
    importlib.import_module(TARGETS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    main()
