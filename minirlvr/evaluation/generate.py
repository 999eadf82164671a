"""Generate a model's responses to a benchmark's prompts and score them: the library half of `python run.py eval`
(minirlvr/commands/eval.py, which lists the files a run writes).

Generation goes through the kit's own sampler (`chat.complete`: the chat template, batched, greedy by default),
appended chunk by chunk to generations.partial.jsonl so that a rerun with the same --out resumes, and refuses if any
setting differs. Scoring is `verify.evaluate`, exactly as `python run.py verify` scores a response file.
This file does not train, judge soft constraints or compute metrics itself.
"""

import glob
import hashlib
import json
import os

from minirlvr import verifiers

from minirlvr.engine import chat
from minirlvr.data import (DataError, append_jsonl, iter_jsonl, prompt_text, to_json, validate_record, write_atomic,
                           write_jsonl)
from minirlvr.engine.model import load_for_inference
from minirlvr.engine.progress import Progress
from minirlvr.evaluation.benchmarks import BENCHES
from minirlvr.evaluation.verify import evaluate, format_report

PARTIAL, FINAL = "generations.partial.jsonl", "generations.jsonl"


def read_benchmark(path):
    """Validated records of a benchmark file; every id and kwargs checked against the verifier registry, so a bad
    file fails here, before any model is loaded. Errors name file:line and the field."""
    records, seen = [], {}
    known = set(verifiers.ids())
    for lineno, row in iter_jsonl(path):
        where = f"{path}:{lineno}"
        validate_record(row, where)
        ids = row.get("instruction_id_list")
        if not ids:
            hint = " (this looks like a response file: score it with `python run.py verify`)" if "response" in row else ""
            raise DataError(f"{where}: field 'instruction_id_list' is missing or empty: eval needs hard "
                            f"constraints to score{hint}")
        for j, (iid, kw) in enumerate(zip(ids, row.get("kwargs") or [{} for _ in ids])):
            if iid not in known:
                raise DataError(f"{where}: field 'instruction_id_list[{j}]': unknown instruction id {iid!r} "
                                f"({len(known)} ids are registered: minirlvr.verifiers.ids())")
            try:
                verifiers.validate_kwargs(iid, kw)
            except verifiers.VerifierError as e:
                raise DataError(f"{where}: field 'kwargs[{j}]': {e}") from None
        # responses are matched to records by prompt text (IFEval's response format has nothing else)
        text = prompt_text(row)
        if text in seen:
            raise DataError(f"{where}: field 'prompt' repeats line {seen[text]}: responses are matched to records by "
                            f"prompt text, so each prompt must be unique")
        seen[text] = lineno
        records.append(row)
    if not records:
        raise DataError(f"{path}: no records")
    return records


def digest(paths):
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def data_files(path):
    """The files a benchmark's --data names: itself, or a folder's JSON files (FollowBench's data/)."""
    if os.path.isdir(path):
        return sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".json"))
    return [path]


def run_settings(args, max_new_tokens):
    """Everything that decides what a generation is. A resume must match all of it; --batch-rows and --device
    are left out (how fast, not what: greedy decoding gives the same tokens up to float noise)."""
    adapter_files = sorted(glob.glob(os.path.join(args.adapter, "adapter_model.*"))) if args.adapter else []
    return {
        "bench": args.bench,
        "model": os.path.abspath(args.model) if os.path.exists(args.model) else args.model,
        "adapter": os.path.abspath(args.adapter) if args.adapter else None,
        "adapter_sha256": digest(adapter_files) if adapter_files else None,  # train rewrites its adapter folder
        "data": os.path.abspath(args.data),
        "data_sha256": digest(data_files(args.data)),
        "limit": args.limit,
        "samples": args.samples,
        "temperature": args.temperature,
        "top_p": 1.0,
        "top_k": 0,
        "max_new_tokens": max_new_tokens,
        "load_4bit": args.load_4bit,
        "seed": args.seed,
        "chat_template": True,
    }


def drop_cut_line(path):
    """A kill mid-write leaves a last line without its newline: drop it (those prompts are generated again)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw.endswith(b"\n") or not raw:
        return False
    write_atomic(path, raw[:raw.rfind(b"\n") + 1].decode("utf-8"))
    return True


def generation_rows(path, settings):
    """The (line number, row) pairs after line 1 of a generations file, once line 1 shows it was written with
    exactly these settings (a cut last line, from a kill mid-write, is dropped first)."""
    if drop_cut_line(path):
        print(f"eval: {path}: dropped a cut last line (the run was killed while writing it)")
    rows = iter_jsonl(path)
    lineno, head = next(rows, (1, {}))
    old = head.get("settings")
    if not isinstance(old, dict):
        raise DataError(f"{path}:{lineno}: field 'settings' missing: not a generations file written by eval")
    differ = [k for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
    if differ:
        what = "; ".join(f"{k}: {old.get(k)!r} then, {settings.get(k)!r} now" for k in differ)
        raise DataError(f"{path} was written with other settings ({what}). Use another --out, or delete "
                        f"{os.path.dirname(path) or '.'} to start over")
    return rows


def read_generations(path, records, settings):
    """{index: row} of a generations file written by an earlier run with exactly these settings."""
    rows = generation_rows(path, settings)
    done, k = {}, settings["samples"]
    for lineno, row in rows:
        i = row.get("index")
        if not isinstance(i, int) or not 0 <= i < len(records):
            raise DataError(f"{path}:{lineno}: field 'index' must be an integer in [0, {len(records)})")
        if row.get("prompt") != prompt_text(records[i]):
            raise DataError(f"{path}:{lineno}: field 'prompt' is not the prompt of record {i} in the data")
        for field, kind in (("responses", str), ("stopped", bool), ("lengths", int)):
            v = row.get(field)
            if not isinstance(v, list) or len(v) != k or not all(isinstance(x, kind) for x in v):
                raise DataError(f"{path}:{lineno}: field {field!r} must be a list of {k} {kind.__name__} values")
        done[i] = row
    return done


def generate_missing(model, tokenizer, records, done, path, args, max_new_tokens):
    """Generate every record not in `done`, appending each finished chunk to `path` as it completes."""
    k, n = args.samples, len(records)
    # Chunks are planned over all records, not the missing ones, and each has its own seed: a resumed run makes
    # the same chunks with the same seeds as one that was never killed. Longest prompts first: an out-of-memory
    # shows at once.
    prompt_len = [len(chat.encode_prompt(r, tokenizer)) for r in records]
    order = sorted(range(n), key=lambda i: -prompt_len[i])
    per_chunk = max(1, args.batch_rows // k)  # one sampler batch of rows (prompts x samples)
    chunks = [order[s:s + per_chunk] for s in range(0, n, per_chunk)]
    what = "greedy" if args.temperature == 0 else f"{k} samples, T={args.temperature}"
    progress = Progress(n, len(done), f"eval {args.bench} ({what})", f"eval {args.bench}", "prompt")
    for c, chunk in enumerate(chunks):
        todo = [i for i in chunk if i not in done]
        if not todo:
            continue
        out = chat.complete(model, tokenizer, [records[i] for i in todo], samples=k, max_new_tokens=max_new_tokens,
                            temperature=args.temperature, seed=args.seed + c, batch_rows=args.batch_rows)
        for j, i in enumerate(todo):
            rows = slice(j * k, (j + 1) * k)  # prompt-major
            row = {"index": i, "key": records[i].get("key"), "prompt": prompt_text(records[i]),
                   "responses": out.texts[rows], "stopped": out.stopped[rows], "lengths": out.lengths[rows]}
            append_jsonl(path, row)
            done[i] = row
        progress.update(len(todo), sum(out.lengths))
    progress.close()


def score(records, gens, k, data_path):
    """verify's metrics and table for each sample, and their means over the k samples."""
    per_sample = [evaluate(records, [(i, g["responses"][s]) for i, g in enumerate(gens)], data_path)[:2]
                  for s in range(k)]
    metrics = {name: sum(m[name] for m, _ in per_sample) / k for name in per_sample[0][0]}
    table = {iid: {"n": row["n"], "strict": sum(t[iid]["strict"] for _, t in per_sample) / k,
                   "loose": sum(t[iid]["loose"] for _, t in per_sample) / k}
             for iid, row in per_sample[0][1].items()}
    return metrics, table, [m for m, _ in per_sample]


def response_files(k):
    return ["responses.jsonl"] + [f"responses-{s}.jsonl" for s in range(1, k)]


def warn_other_base(adapter, model):
    """Shape checks catch an adapter for another architecture; one for a same-shaped sibling (base vs instruct) loads
    silently, so say when the base it names is not the one given (a warning: folders get moved and renamed)."""
    path = os.path.join(adapter, "adapter_config.json")
    try:
        with open(path, encoding="utf-8") as f:
            named = json.load(f).get("base_model_name_or_path")
    except (OSError, ValueError):
        return  # load_for_inference reports a missing or broken adapter folder
    name = os.path.basename(os.path.normpath(str(named or "")))
    if name and name != os.path.basename(os.path.normpath(model)):
        print(f"eval: warning: {path}: field 'base_model_name_or_path' is {named!r}, but --model is {model!r}: "
              f"was this adapter trained on another base?")


def default_out(args):
    name = os.path.basename(os.path.normpath(args.model))
    if args.adapter:
        name += "+" + "-".join(os.path.normpath(os.path.abspath(args.adapter)).split(os.sep)[-2:])
    return os.path.join("runs", "eval", f"{args.bench}-{name}")


def run(args):
    bench = BENCHES[args.bench]
    max_new_tokens = args.max_new_tokens or bench["max_new_tokens"]
    records = read_benchmark(args.data)[:args.limit]
    settings = run_settings(args, max_new_tokens)
    out = args.out or default_out(args)
    partial, final = os.path.join(out, PARTIAL), os.path.join(out, FINAL)
    existing = final if os.path.exists(final) else partial if os.path.exists(partial) else None
    if existing:
        done = read_generations(existing, records, settings)
    else:
        foreign = [f for f in response_files(args.samples) + ["metrics.json"] if os.path.exists(os.path.join(out, f))]
        if foreign:
            raise DataError(f"{out} holds {', '.join(foreign)} but no {PARTIAL} or {FINAL}: not an eval folder "
                            f"this run can resume; use another --out")
        done = {}
    print(f"eval {args.bench}: {len(records)} prompts from {args.data}, {len(done)} already generated in {out}")

    if len(done) < len(records):
        if args.adapter:
            warn_other_base(args.adapter, args.model)
        model, tokenizer = load_for_inference(args.model, args.adapter, args.load_4bit, args.device)
        if not getattr(tokenizer, "chat_template", None):
            print("eval: warning: the tokenizer has no chat template; prompts go in as plain text")
        if existing is None:
            write_jsonl(partial, [{"settings": settings}])
            existing = partial
        generate_missing(model, tokenizer, records, done, existing, args, max_new_tokens)

    gens = [done[i] for i in range(len(records))]
    k = args.samples
    metrics, table, per_sample = score(records, gens, k, args.data)
    lengths = [x for g in gens for x in g["lengths"]]
    report = {
        "bench": args.bench, "settings": settings, "out": out,
        "n_prompts": len(records), "n_instructions": sum(len(r["instruction_id_list"]) for r in records),
        "samples": k,
        "averaging": f"each metric is the mean over {k} samples per prompt" if k > 1 else "one sample per prompt",
        "headline": {bench["headline"]: metrics[bench["headline"]]},
        "metrics": metrics, "per_instruction": table, "metrics_per_sample": per_sample,
        "generation": {"mean_tokens": sum(lengths) / len(lengths),
                       "cut_at_max_new_tokens": sum(not x for g in gens for x in g["stopped"]) / len(lengths)},
        "response_files": response_files(k), "unmatched_responses": [], "missing_responses": [],
    }
    for s, name in enumerate(report["response_files"]):
        write_jsonl(os.path.join(out, name), [{"prompt": g["prompt"], "response": g["responses"][s]} for g in gens])
    write_atomic(os.path.join(out, "metrics.json"), to_json(report, indent=1, ensure_ascii=False) + "\n")
    if existing == partial:
        os.replace(partial, final)  # complete: from now on a rerun only re-scores
    return report


def format_eval(report):
    s = report["settings"]
    k, gen = report["samples"], report["generation"]
    lines = [f"eval {report['bench']}: model {s['model']}" + (f" + adapter {s['adapter']}" if s["adapter"] else ""),
             "greedy decoding" if s["temperature"] == 0 else f"sampling at temperature {s['temperature']}, "
             + (f"{k} samples per prompt: metrics are means over the {k} samples" if k > 1 else "one sample per prompt"),
             format_report(report)]
    if k > 1:
        lines.append("\n  per sample: " + ", ".join(
            f"#{i} {100 * m['prompt_level_strict']:.2f}/{100 * m['prompt_level_loose']:.2f}"
            for i, m in enumerate(report["metrics_per_sample"])) + "  (prompt-level strict/loose)")
    (name, value), = report["headline"].items()
    lines.append(f"\n  headline ({report['bench']}): {name} {100 * value:.2f}")
    lines.append(f"  mean response length {gen['mean_tokens']:.1f} tokens; {100 * gen['cut_at_max_new_tokens']:.1f}% "
                 f"cut at --max-new-tokens {s['max_new_tokens']} (no EOS)")
    lines.append(f"\n  wrote {', '.join(report['response_files'])}, metrics.json, {FINAL} in {report['out']}")
    return "\n".join(lines)
