"""`python run.py attention`: how much a model's responses attend to the constraint text of their instructions.

    python run.py attention --model PATH [--adapter PATH] --data FILE.jsonl [--responses FILE.jsonl | generate]
                            [--compare-adapter PATH] [--out DIR] [--backend NAME] [--limit N] [--hard-only]
                            [--4bit] [--max-new-tokens N] [--device auto|cpu|cuda]

The responses are the records' own `response` fields, or the lines of --responses FILE with the same prompt, or,
with `--responses generate`, the first checkpoint's (--model + --adapter) greedy answer to each record, saved to
OUT/responses.jsonl (a rerun can pass that file). With --compare-adapter the second checkpoint is scored on the same
responses: the difference is in where the model looks, not in what it wrote.

What is measured and how: minirlvr/evaluation/attention.py. Records written by `reproduce`'s attention stage
(runs/<run>/attention_records.jsonl: responses, spans and "constraint_labels") also get the stage's split by group
(seen / unseen types, hard / soft), with the stage's own function: the same numbers as its attention.json.
"""

import argparse
import gc
import os
import sys

from minirlvr.cli import HelpFormatter
from minirlvr.data import DataError, prompt_text, read_jsonl, read_records, to_json, write_atomic, write_jsonl

from minirlvr.engine.machine import THREADS_HELP, cpu_threads

GENERATE = "generate"


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python run.py attention", description="\n\n".join(__doc__.split("\n\n")[:3]),
                                formatter_class=HelpFormatter)
    p.add_argument("--model", required=True, help="Hugging Face model folder (weights + tokenizer)")
    p.add_argument("--adapter", help="peft LoRA adapter folder for the first checkpoint")
    p.add_argument("--compare-adapter", help="adapter of a second checkpoint on the same model")
    p.add_argument("--data", required=True, help="records JSONL (with 'response', or see --responses)")
    p.add_argument("--responses", help="JSONL of {'prompt', 'response'} matched to records by prompt, or 'generate': "
                                       "the first checkpoint answers each record (greedy)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="response length with --responses generate")
    p.add_argument("--batch-rows", type=int, default=64, help="prompts decoded together with --responses generate")
    p.add_argument("--out", default="attention_report", help="output folder")
    p.add_argument("--backend", help="attention_mass backend: triton, blockwise, reference (default: by device)")
    p.add_argument("--limit", type=int, help="only the first N records")
    p.add_argument("--hard-only", action="store_true",
                   help="constraint text = hard constraints only (soft constraints' text counts as task text)")
    p.add_argument("--4bit", dest="load_4bit", action="store_true", help="load the model in 4-bit NF4 (bitsandbytes)")
    p.add_argument("--load-4bit", dest="load_4bit", action="store_true", help=argparse.SUPPRESS)  # the old spelling
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, help=THREADS_HELP)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    for name in ("max_new_tokens", "batch_rows", "limit"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def generated(model, tok, records, args):
    """The records with the model's greedy answers as their 'response' (also written to OUT/responses.jsonl),
    and (key, reason) for each record answered with nothing: skipped, as the pipeline's stage skips them."""
    from minirlvr.engine.chat import complete

    texts = complete(model, tok, records, max_new_tokens=args.max_new_tokens, batch_rows=args.batch_rows,
                     progress=True, desc="attention: responses").texts
    write_jsonl(os.path.join(args.out, "responses.jsonl"),
                [{"prompt": prompt_text(r), "response": t} for r, t in zip(records, texts)])
    kept, empty = [], []
    for i, (r, t) in enumerate(zip(records, texts)):
        key = r.get("key", i)
        if t:
            kept.append(dict(r, key=key, response=t))
        else:
            empty.append((key, f"{args.data}:record {i + 1}: the model's response is empty"))
    return kept, empty


def main(argv=None):
    args = parse_args(argv)
    # the model code is imported once the arguments are read: --help stays instant
    from minirlvr.engine.model import ModelError

    try:
        report(args)
    except (DataError, ModelError, OSError) as e:
        sys.exit(f"attention: error: {e}")


def report(args):
    from minirlvr.engine.model import load_tokenizer, pick_device
    from minirlvr.evaluation.attention import analyze, heatmap, load, markdown_table, prepare, stage_scores
    from minirlvr.kernels.attention import resolve_backend

    cpu_threads(args.threads)
    records = read_records(args.data)[:args.limit]
    if args.responses is None:
        bare = next((i for i, r in enumerate(records) if "response" not in r), None)
        if bare is not None:  # before any model is loaded
            raise DataError(f"{args.data}:record {bare + 1}: no field 'response': pass the responses with "
                            f"--responses FILE.jsonl, or let the model answer with --responses {GENERATE}")
    responses = read_jsonl(args.responses) if args.responses not in (None, GENERATE) else None
    device = pick_device(args.device)
    backend = resolve_backend(args.backend, device)
    print(f"attention report: device {device}, attention_mass backend {backend}")
    tok = load_tokenizer(args.model)
    os.makedirs(args.out, exist_ok=True)
    loaded, empty = None, []  # loaded: the first checkpoint, when it has answered the records already
    if args.responses == GENERATE:
        loaded = load(args.model, args.adapter, args.load_4bit, device)
        records, empty = generated(loaded, tok, records, args)
        print(f"{len(records) + len(empty)} responses generated ({len(empty)} empty) -> {args.out}/responses.jsonl")
    items, skipped = prepare(tok, records, responses, where=args.data, soft=not args.hard_only)
    skipped = empty + skipped
    if not items:
        raise DataError(f"{args.data}: no record with locatable constraint text ({len(skipped)} skipped, "
                        f"first: {skipped[0][1] if skipped else 'none'})")
    print(f"{len(items)} records, {len(skipped)} skipped (constraint text not found, or no response)")

    labelled = [r for r in records if "constraint_labels" in r and "response" in r]  # the stage's records
    checkpoints = [("first", args.adapter)] + ([("second", args.compare_adapter)] if args.compare_adapter else [])
    results, rows, groups = [], [], {}
    for label, adapter in checkpoints:
        model, loaded = loaded if loaded is not None else load(args.model, adapter, args.load_4bit, device), None
        score, mass, r = analyze(model, items, backend, label)
        if labelled:
            groups[label] = stage_scores(model, tok, labelled, backend, where=args.data)["groups"]
        results.append((label, adapter, score, mass))
        rows += r
        del model
        gc.collect()

    md = [f"# Attention to constraint text\n\nmodel `{args.model}`, data `{args.data}`: {len(items)} records, "
          f"{len(skipped)} skipped. Score = response tokens' attention mass on the constraint text / its share of "
          f"the visible keys (1 = its share), mean over response tokens, then over records.\n"]
    panels, out = [], {"model": args.model, "data": args.data, "responses": args.responses, "records": len(items),
                       "skipped": skipped, "checkpoints": []}
    for label, adapter, score, mass in results:
        name = f"{label}: {adapter or 'no adapter'}"
        md.append(markdown_table(score, f"{name}, normalized score"))
        md.append(markdown_table(mass, f"{name}, raw mass on constraint text", "{:.4f}"))
        panels.append((f"{label}: {os.path.basename(adapter.rstrip('/')) if adapter else 'no adapter'}", score, False))
        out["checkpoints"].append({"label": label, "adapter": adapter, "score": score.tolist(),
                                   "mass": mass.tolist(), **({"groups": groups[label]} if label in groups else {})})
    if len(results) == 2:
        diff = results[1][2] - results[0][2]  # (n_layers, H)
        md.append(markdown_table(diff, "difference, second - first (normalized score)", "{:+.3f}"))
        panels.append(("second - first", diff, True))
        out["diff"] = diff.tolist()
    if groups:
        names = list(next(iter(groups.values())))
        md.append("### By group of constraints (the pipeline's attention stage)\n\n| checkpoint | "
                  + " | ".join(names) + " |\n" + "|---" * (len(names) + 1) + "|\n"
                  + "".join(f"| {label} | " + " | ".join(f"{g[n]['score']:.3f} (n={g[n]['n']})" if n in g else "n/a"
                                                         for n in names) + " |\n" for label, g in groups.items()))
    if skipped:
        md.append("### Skipped records\n\n" + "\n".join(f"- {k}: {why}" for k, why in skipped) + "\n")
    write_atomic(os.path.join(args.out, "report.md"), "\n".join(md))
    write_atomic(os.path.join(args.out, "scores.json"), to_json(out, indent=1))
    write_jsonl(os.path.join(args.out, "per_record.jsonl"), rows)
    heatmap(panels, os.path.join(args.out, "heatmap.png"))
    print(f"wrote {args.out}/report.md, heatmap.png, scores.json, per_record.jsonl")


if __name__ == "__main__":
    main()
