"""`python run.py eval --model M [--adapter A] --bench ifeval|ifbench --data FILE [--out DIR] ...`

Generates responses to a benchmark's prompts with the kit's own sampler (`chat.complete`: the chat template,
batched, greedy by default) and scores them with the hard-constraint verifiers exactly as `python run.py verify`
scores a response file: prompt-level and instruction-level strict/loose accuracy and a per-instruction-id table.

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

from minirlvr.data import DataError
from minirlvr.engine.model import ModelError
from minirlvr.evaluation.generate import BENCHES, format_eval, run


def positive(v):
    n = int(v)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return n


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python run.py eval", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Files in --out:\n" + __doc__.split("Files in --out:\n")[1].split("\n\n")[0] + "\n")
    p.add_argument("--model", required=True, help="base model: a local Hugging Face folder or a hub id")
    p.add_argument("--adapter", help="a peft LoRA adapter folder (what `python run.py train` writes)")
    p.add_argument("--bench", required=True, choices=sorted(BENCHES),
                   help="names the benchmark for the report and its defaults (--max-new-tokens, headline metric)")
    p.add_argument("--data", required=True, help="records (JSONL); IFEval's input_data.jsonl and IFBench_test.jsonl "
                                                 "are valid records")
    p.add_argument("--out", help="output folder (default runs/eval/BENCH-MODEL[+ADAPTER]); rerun with it to resume")
    p.add_argument("--limit", type=positive, help="only the first N records")
    p.add_argument("--samples", type=positive, default=1, help="K samples per prompt; metrics are means over them")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); > 0 needed for --samples > 1")
    p.add_argument("--max-new-tokens", type=positive, help="default: the benchmark's (1280)")
    p.add_argument("--4bit", dest="load_4bit", action="store_true", help="load the base in 4-bit NF4 (bitsandbytes)")
    p.add_argument("--batch-rows", type=positive, default=64, help="rows (prompts x samples) decoded together")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (unused when greedy)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if args.temperature < 0:
        p.error("--temperature must be >= 0")
    if args.samples > 1 and args.temperature == 0:
        p.error("--samples > 1 needs --temperature > 0: greedy samples would all be the same")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        report = run(args)
    except (DataError, ModelError, OSError) as e:
        sys.exit(f"eval: error: {e}")
    print(format_eval(report))
    return report


if __name__ == "__main__":
    main()
