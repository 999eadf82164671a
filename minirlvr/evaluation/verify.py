"""`python run.py verify --data PROMPTS.jsonl --responses RESPONSES.jsonl [--out report.json]`

Scores a response file (one {"prompt", "response"} per line) against IFEval-format records with the
hard-constraint verifiers, matching each response to its record by prompt text (exactly, else up to
leading and trailing whitespace: IFBench's released responses carry a trailing space). Prints IFEval's
four metrics (prompt-level and instruction-level, strict and loose) and a per-instruction-id table. IFEval
and IFBench files are scored alike: each instruction id names its verifier.

Nothing is silently dropped: responses whose prompt is not in the data, and records that got no
response, are counted, listed and written to the report; the metrics cover the matched pairs only.
This file does not judge soft constraints (that is the judge's job).
"""

import argparse
import json
import sys
from collections import defaultdict

from tqdm import tqdm

from minirlvr import verifiers
from minirlvr.data import DataError, iter_jsonl, prompt_text, read_records, write_atomic


def read_responses(path):
    """[(line, prompt, response)]; a missing or non-string field names the file and line."""
    out = []
    for lineno, row in iter_jsonl(path):
        for field in ("prompt", "response"):
            if not isinstance(row.get(field), str):
                raise DataError(f"{path}:{lineno}: field {field!r} must be a string")
        out.append((lineno, row["prompt"], row["response"]))
    return out


def match(data_path, records, resp_path, responses):
    """Pair responses with records by prompt text, exact or else stripped: (pairs, unmatched responses,
    records with no response)."""
    by_prompt, by_stripped = {}, {}
    for k, rec in enumerate(records):
        by_prompt.setdefault(prompt_text(rec), k)
        by_stripped.setdefault(prompt_text(rec).strip(), k)
    pairs, unmatched, seen = [], [], {}
    for lineno, prompt, response in responses:
        k = by_prompt.get(prompt, by_stripped.get(prompt.strip()))
        if k is None:
            unmatched.append({"where": f"{resp_path}:{lineno}", "prompt": prompt})
            continue
        if k in seen:
            raise DataError(f"{resp_path}:{lineno}: a second response to the prompt already answered on line {seen[k]}")
        seen[k] = lineno
        pairs.append((k, response))
    missing = [{"key": rec.get("key", k), "prompt": prompt_text(rec)} for k, rec in enumerate(records) if k not in seen]
    return pairs, unmatched, missing


def evaluate(records, pairs, data_path="data"):
    """Per-pair verdicts and the aggregate metrics (fractions in [0, 1])."""
    results, per_id = [], defaultdict(lambda: [0, 0, 0])  # id -> [n, strict, loose]
    for k, response in tqdm(pairs, desc="verify", unit="prompt", disable=None):
        rec = records[k]
        try:
            verdict = verifiers.score(rec, response)
        except verifiers.VerifierError as e:
            raise DataError(f"{data_path}: record {k + 1} (key {rec.get('key')!r}): {e}") from None
        for iid, s, lo in zip(rec["instruction_id_list"], verdict["strict"], verdict["loose"]):
            per_id[iid][0] += 1
            per_id[iid][1] += s
            per_id[iid][2] += lo
        results.append({"key": rec.get("key", k), "instruction_id_list": rec["instruction_id_list"], **verdict})
    n_prompts = len(results)
    n_inst = sum(len(r["strict"]) for r in results)
    metrics = {
        "prompt_level_strict": sum(r["prompt_strict"] for r in results) / max(n_prompts, 1),
        "prompt_level_loose": sum(r["prompt_loose"] for r in results) / max(n_prompts, 1),
        "instruction_level_strict": sum(sum(r["strict"]) for r in results) / max(n_inst, 1),
        "instruction_level_loose": sum(sum(r["loose"]) for r in results) / max(n_inst, 1),
    }
    table = {iid: {"n": n, "strict": s / n, "loose": lo / n} for iid, (n, s, lo) in sorted(per_id.items())}
    return metrics, table, results


def format_report(report):
    lines = [f"scored {report['n_prompts']} prompts, {report['n_instructions']} instructions"]
    for name, value in report["metrics"].items():
        lines.append(f"  {name:<26} {100 * value:6.2f}")
    width = max([len(i) for i in report["per_instruction"]] + [14])
    lines.append(f"\n  {'instruction id':<{width}}  {'n':>4}  {'strict':>6}  {'loose':>6}")
    for iid, row in report["per_instruction"].items():
        lines.append(f"  {iid:<{width}}  {row['n']:>4}  {100 * row['strict']:6.2f}  {100 * row['loose']:6.2f}")
    for name, what in (("unmatched_responses", "responses whose prompt is not in the data (not scored)"),
                       ("missing_responses", "records with no response (not scored)")):
        items = report[name]
        if items:
            lines.append(f"\nWARNING: {len(items)} {what}:")
            for item in items[:10]:
                where = item.get("where") or f"key {item['key']}"
                lines.append(f"  {where}: {item['prompt'][:100]!r}")
            if len(items) > 10:
                lines.append(f"  ... and {len(items) - 10} more (all listed in --out)")
    return "\n".join(lines)


def run(data, responses, out=None):
    records = read_records(data)
    pairs, unmatched, missing = match(data, records, responses, read_responses(responses))
    if not pairs:
        raise DataError(f"no response in {responses} matches a prompt in {data}")
    metrics, table, results = evaluate(records, pairs, data)
    report = {"data": data, "responses": responses, "n_prompts": len(results),
              "n_instructions": sum(len(r["strict"]) for r in results), "metrics": metrics,
              "per_instruction": table, "unmatched_responses": unmatched, "missing_responses": missing,
              "results": results}
    if out:
        write_atomic(out, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return report


def main(argv=None):
    p = argparse.ArgumentParser(prog="python run.py verify", description=__doc__.split("\n\n")[1])
    p.add_argument("--data", required=True, help="IFEval-format records (JSONL): IFEval, IFBench or any record file")
    p.add_argument("--responses", required=True, help="JSONL with 'prompt' and 'response' per line")
    p.add_argument("--out", help="write the full report (metrics, table, per-prompt verdicts) as JSON")
    p.add_argument("--run-dataset-code", action="store_true",
                   help="VerInstruct data: run its rule checks (Python from the data file) in the sandbox")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    from minirlvr.reward import rule_checks  # VerInstruct data goes to rule_checks.py (rule checks run in the sandbox)

    if rule_checks.is_rule_data(args.data):
        return rule_checks.verify_main(args)
    try:
        report = run(args.data, args.responses, args.out)
    except (DataError, OSError) as e:
        sys.exit(f"verify: error: {e}")
    print(format_report(report))
    if args.out:
        print(f"\nreport written to {args.out}")
    return report


if __name__ == "__main__":
    main()
