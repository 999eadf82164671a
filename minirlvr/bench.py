"""`python -m minirlvr.bench <target> [options]`: benchmarks that report ratios against a baseline measured
in the same run. Each target lives beside the code it measures; this file only dispatches."""

import importlib
import sys

TARGETS = {
    "verifiers": "minirlvr.verifiers.bench",  # checks/s vs the reference IFEval scorer
    "logprob": "minirlvr.kernels.bench_logprob",  # fused token log-probs vs full logits
    "attention": "minirlvr.kernels.bench_attention",  # attention mass vs eager output_attentions
    "sampler": "minirlvr.bench_sampler",  # own sampler vs model.generate
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in TARGETS:
        sys.exit(f"usage: python -m minirlvr.bench {{{','.join(TARGETS)}}} [options]")
    importlib.import_module(TARGETS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    main()
