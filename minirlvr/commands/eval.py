"""`python run.py eval --model M [--adapter A] --bench BENCH --data FILE [--out DIR] ...`

Generates responses to a benchmark's prompts with the kit's own sampler (`chat.complete`: the chat template,
batched, greedy by default) and scores them. ifeval / ifbench: with the hard-constraint verifiers exactly as `python
run.py verify` scores a response file (prompt-level and instruction-level strict/loose accuracy, a per-id table).
multi-if: three turns, each asked with the model's own earlier responses, scored by Multi-IF's rules. cfbench,
followbench: judged by --judge-model with the benchmark's own prompt (--judge-mode official) or one question per
constraint (pointwise); FollowBench's rule-checked items by rule (evaluation/conversations.py lists those files).

Files in --out:
    responses.jsonl            {"prompt", "response"} per line in data order: IFEval's response format, so the
                               benchmark's own scripts (and `python run.py verify`) re-score it. With --samples K > 1
                               it holds sample 0 and responses-1.jsonl ... responses-{K-1}.jsonl the others: each
                               file alone is one complete run in that format.
    metrics.json               what is printed: the four metrics and the table (means over the K samples), each
                               sample's metrics, generation lengths, the settings
    generations.jsonl          every sample with its stop reason and length; line 1 holds the settings
    generations.partial.jsonl  the same while generating, appended chunk by chunk (the only file ever appended):
                               a rerun with the same --out resumes from it, and refuses if any setting differs

A run that finds a complete generations.jsonl with the same settings re-scores it without loading the model.
This file does not train, judge soft constraints or compute metrics itself (evaluation/verify.py does).
"""

import argparse
import sys

from minirlvr.cli import HelpFormatter
from minirlvr.data import DataError
from minirlvr.engine.machine import THREADS_HELP, cpu_threads
from minirlvr.evaluation.benchmarks import BENCHES, BENCHMARKS


def positive(v):
    n = int(v)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return n


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python run.py eval", description=__doc__.split("\n\n")[1],
                                formatter_class=HelpFormatter,
                                epilog="Files in --out:\n" + __doc__.split("Files in --out:\n")[1].split("\n\n")[0] + "\n")
    p.add_argument("--model", required=True, help="base model: a local Hugging Face folder or a hub id")
    p.add_argument("--adapter", help="a peft LoRA adapter folder (what `python run.py train` writes)")
    p.add_argument("--bench", required=True, choices=sorted(BENCHES) + sorted(BENCHMARKS),
                   help="the benchmark: how --data is read and scored, its defaults (--max-new-tokens, headline)")
    p.add_argument("--data", required=True, help="ifeval/ifbench: records (JSONL; IFEval's input_data.jsonl and "
                                                 "IFBench_test.jsonl are valid records); multi-if: the CSV; cfbench: "
                                                 "cfbench_data.json; followbench: its data/ folder or one "
                                                 "*_constraints.json")
    p.add_argument("--out", help="output folder (default runs/eval/BENCH-MODEL[+ADAPTER]); rerun with it to resume")
    p.add_argument("--limit", type=positive, help="only the first N records")
    p.add_argument("--samples", type=positive, default=1, help="K samples per prompt; metrics are means over them")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); > 0 needed for --samples > 1")
    p.add_argument("--max-new-tokens", type=positive, help="default: the benchmark's (1280)")
    p.add_argument("--4bit", dest="load_4bit", action="store_true", help="load the base in 4-bit NF4 (bitsandbytes)")
    p.add_argument("--batch-rows", type=positive, default=64, help="rows (prompts x samples) decoded together")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (unused when greedy)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=positive, help=THREADS_HELP)
    p.add_argument("--judge-model", help="cfbench, followbench: the judge, a local model folder or hub id")
    p.add_argument("--judge-mode", choices=("official", "pointwise"),
                   help="official (default): the benchmark's own prompt, all constraints in one call; pointwise: "
                        "one yes/no question per constraint through the kit's judge")
    p.add_argument("--judge-4bit", action="store_true", help="load the judge in 4-bit NF4")
    p.add_argument("--judge-max-new-tokens", type=positive, default=1024,
                   help="the judge's answer length (official CFBench writes every criterion back)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if args.bench in BENCHMARKS and args.samples > 1:
        p.error(f"--samples > 1 is for ifeval / ifbench; {args.bench} is scored on one response per turn")
    if args.bench not in BENCHMARKS and args.judge_model:
        p.error(f"--judge-model is for the judged benchmarks (cfbench, followbench), not {args.bench}")
    if args.temperature < 0:
        p.error("--temperature must be >= 0")
    if args.samples > 1 and args.temperature == 0:
        p.error("--samples > 1 needs --temperature > 0: greedy samples would all be the same")
    return args


def main(argv=None):
    args = parse_args(argv)
    # the model code is imported once the arguments are read: --help stays instant
    from minirlvr.engine.model import ModelError
    from minirlvr.evaluation.conversations import format_conversations, run_conversations
    from minirlvr.evaluation.generate import default_out, format_eval, run

    cpu_threads(args.threads)
    if args.bench in BENCHMARKS:
        args.out = args.out or default_out(args)
    try:
        report = run_conversations(args) if args.bench in BENCHMARKS else run(args)
    except (DataError, ModelError, OSError) as e:
        sys.exit(f"eval: error: {e}")
    print(format_conversations(report) if args.bench in BENCHMARKS else format_eval(report))
    return report


if __name__ == "__main__":
    main()
