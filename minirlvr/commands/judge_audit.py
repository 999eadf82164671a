"""`python run.py judge-audit`: how often does an LLM judge miss a violated constraint?

    python run.py judge-audit --model M --data D --responses R|generate [--modes pointwise,batched] [--out DIR]
                              [--adapter A] [--4bit] [--limit N]

What is measured and how: minirlvr/evaluation/judge_audit.py.
"""

import argparse
import sys

from minirlvr.cli import HelpFormatter
from minirlvr.data import DataError
from minirlvr.engine.config import ConfigError
from minirlvr.engine.machine import THREADS_HELP, cpu_threads


def parser():
    p = argparse.ArgumentParser(prog="python run.py judge-audit", description="\n\n".join(__doc__.split("\n\n")[:2]),
                                formatter_class=HelpFormatter)
    p.add_argument("--model", required=True, help="the judge: a model folder or hub id (and the policy for generate)")
    p.add_argument("--data", required=True, help="records with hard constraints (JSONL, the kit's record format)")
    p.add_argument("--responses", required=True,
                   help="JSONL of {prompt, response} matched to --data by prompt text, or 'generate'")
    p.add_argument("--modes", default="pointwise,batched", help="comma-separated: pointwise, batched")
    p.add_argument("--out", default="runs/judge-audit", help="output folder (audit.md, audit.json, recall.png)")
    p.add_argument("--adapter", help="a peft adapter folder: responses come from it, the judge is the base")
    p.add_argument("--4bit", dest="load_in_4bit", action="store_true", help="load --model in 4-bit NF4")
    p.add_argument("--limit", type=int, default=None, help="audit at most N responses")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help=THREADS_HELP)
    p.add_argument("--template-pointwise", dest="template_pointwise", help="file replacing POINTWISE_TEMPLATE")
    p.add_argument("--template-batched", dest="template_batched", help="file replacing BATCHED_TEMPLATE")
    p.add_argument("--batch-rows", dest="batch_rows", type=int, default=64, help="judge calls decoded together")
    p.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, default=512,
                   help="response length with --responses generate")
    p.add_argument("--temperature", type=float, default=0.0, help="with --responses generate (0 = greedy)")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None):
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.limit is not None and args.limit < 1:
        sys.exit("judge-audit: error: --limit must be >= 1")
    # the judge's code (torch, transformers) is imported once the arguments are read: --help stays instant
    from minirlvr.engine.model import ModelError
    from minirlvr.evaluation.judge_audit import PAPER_LABEL, PAPER_RECALL, pct, run

    cpu_threads(args.threads)
    try:
        result, text = run(args)
    except (ConfigError, DataError, ModelError, OSError) as e:
        sys.exit(f"judge-audit: error: {e}")
    print(text)
    for mode, res in result["modes"].items():
        lo, hi = PAPER_RECALL[mode]
        m = res["overall"]
        unread = (f", {m['unparseable']} unreadable answers, counted as caught; readable only: "
                  f"{pct(m['recall_violated_readable'])}%" if m["unparseable"] else "")
        print(f"{mode}: recall on violated constraints {pct(m['recall_violated'])}% (ours, {m['violated']} "
              f"violations{unread}); {PAPER_LABEL}: {100 * lo:.0f}-{100 * hi:.0f}%")
    print(f"wrote {args.out}/audit.md, audit.json, recall.png")
    return result


if __name__ == "__main__":
    main()
