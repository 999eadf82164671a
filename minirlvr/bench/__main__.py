"""`python -m minirlvr.bench <target> [options]` (or `minirlvr bench <target>`): the benchmark targets, one file each
in this folder, each reporting ratios against a baseline measured in the same run. This file only dispatches: it
imports a target only when that target runs, so `--help` is instant."""

import importlib
import sys

TARGETS = {
    "verifiers": "minirlvr.bench.verifiers",  # checks/s vs the reference IFEval and IFBench scorers
    "logprob": "minirlvr.bench.logprob",  # fused token log-probs vs full logits
    "attention": "minirlvr.bench.attention",  # attention mass vs eager output_attentions
    "sampler": "minirlvr.bench.sampler",  # the sampler's fast path vs its eager path and model.generate
    "judge": "minirlvr.bench.judge",  # LLM judge on the policy's base (adapter off) vs a separate judge copy
    "step": "minirlvr.bench.step",  # one GRPO step of the kit's loop vs TRL's GRPOTrainer, same model and settings
    "sandbox": "minirlvr.bench.sandbox",  # 1,000 dataset checks confined by the kernel vs the pre-confinement design
    "multiif": "minirlvr.bench.multiif",  # Multi-IF checks/s vs the official scorer; hostile 1 MB responses
    "judged": "minirlvr.bench.judged",  # FollowBench rule checks vs the official ones; hostile 1 MB responses
}


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
