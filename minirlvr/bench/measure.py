"""What the benchmarks share: a child process for a clean measurement, clocks that wait for the GPU, peak memory.

A benchmark reports ratios against a baseline measured in the same run, never absolute times from another run."""

import os
import sys
import time

import torch

from minirlvr.engine.malloc import return_freed_memory

# The benchmarks' default data: the reference data folder beside a checkout (../shared/data), or
# $MINIRLVR_SHARED_DATA. Every target also takes its files as options: users download them from the releases.
CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED_DATA = os.environ.get("MINIRLVR_SHARED_DATA") or os.path.join(CHECKOUT, "..", "shared", "data")

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


class TensorPeak:
    """The most bytes of CPU tensors alive at once among those allocated since construction, from torch's profiler
    (every allocation and free of torch's CPU allocator, in order; it does not report frees of blocks allocated
    before it started): the CPU's counterpart of torch.cuda.max_memory_allocated, which is what pipeline/plan.py
    estimates. Unlike the resident set it does not count Python objects, tensor headers or the C heap's pages,
    whose share depends on the process's history (tests/test_plan.py measured 1-2 MiB of it in a 10 MiB sampling
    phase, varying by run and machine), nor scratch that a library takes from malloc itself. Profiling slows the
    code it measures: not for timings. peak() stops the profiler (a profiler still running when the interpreter
    exits can crash it)."""

    def __init__(self):
        from torch.profiler import ProfilerActivity, profile

        self.prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        self.prof.__enter__()
        self.top = None

    def peak(self):
        if self.top is None:
            self.prof.__exit__(None, None, None)
            events = [e for e in self.prof.profiler.kineto_results.events() if e.name() == "[memory]"]
            level = self.top = 0
            for e in sorted(events, key=lambda e: e.start_ns()):  # nbytes: > 0 an allocation, < 0 a free
                level += e.nbytes()
                self.top = max(self.top, level)
        return self.top
