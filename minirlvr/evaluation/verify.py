"""Score a response file against benchmark records (`python run.py verify`, minirlvr/commands/verify.py).

Scores a response file (one {"prompt", "response"} per line) against IFEval-format records with the
hard-constraint verifiers, matching each response to its record by prompt text (exactly, else up to
leading and trailing whitespace: IFBench's released responses carry a trailing space). Prints IFEval's
four metrics (prompt-level and instruction-level, strict and loose) and a per-instruction-id table. IFEval
and IFBench files are scored alike: each instruction id names its verifier.

Nothing is silently dropped: responses whose prompt is not in the data, and records that got no
response, are counted, listed and written to the report; the metrics cover the matched pairs only.
VerInstruct data (records that carry their own Python rule checks) is scored by `run_rules`: hard ids by the
verifiers, rule checks in the sandbox (reward/rule_checks.py). This file does not judge soft constraints (that is
the judge's job).
"""

import os
from collections import defaultdict

from minirlvr import verifiers
from minirlvr.data import DataError, iter_jsonl, prompt_text, read_records, to_json, write_atomic
from minirlvr.engine.progress import Progress
from minirlvr.datasets.convert import read_verinstruct
from minirlvr.reward import rule_checks


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
    progress = Progress(len(pairs), desc="verify", unit="prompt")
    for k, response in pairs:
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
        progress.update(1)
    progress.close()
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
        write_atomic(out, to_json(report, indent=1, ensure_ascii=False) + "\n")
    return report


# ---------------------------------------------------------------------------------------------- VerInstruct data
def is_rule_data(path):
    """Does the file's first record carry VerInstruct checkers (raw) or rule_checks (converted)?"""
    try:
        _, row = next(iter_jsonl(path), (None, {}))
    except (OSError, DataError):
        return False  # the IFEval path reports the error
    reward_model = row.get("reward_model") if isinstance(row.get("reward_model"), dict) else {}
    gt = row.get("ground_truth", reward_model.get("ground_truth"))
    return "checkers" in row or "rule_checks" in row or (isinstance(gt, (str, dict)) and "checkers" in gt)


def read_rule_data(path):
    """Records of a raw VerInstruct file or of a converted one (records with rule_checks)."""
    first = next(iter_jsonl(path), (None, {}))[1]
    if "rule_checks" in first:
        return [rule_checks.validate(r, f"{path}:{k + 1}") for k, r in enumerate(read_records(path))]
    return read_verinstruct(path)[0]


def run_rules(data, responses, out=None, allow=False, log=None):
    """Score a response file against VerInstruct data: hard ids by the verifiers, rule checks in the sandbox."""
    records = read_rule_data(data)
    pairs, unmatched, missing = match(data, records, responses, read_responses(responses))
    if not pairs:
        raise DataError(f"no response in {responses} matches a prompt in {data}")
    recs, texts = [records[k] for k, _ in pairs], [t for _, t in pairs]
    journal = f"{out}.verdicts.jsonl" if out else None  # verdicts as they come: a killed run resumes from here
    ruled = rule_checks.verdicts(recs, texts, allow, **({"log": log} if log else {}), journal=journal, progress=True)
    per_name, failures, results = defaultdict(lambda: [0, 0]), [], []
    for rec, text, rule_vs in zip(recs, texts, ruled):
        hard = verifiers.score(rec, text)["strict"] if rec.get("instruction_id_list") else []
        for rule, v in zip(rec.get("rule_checks", []), rule_vs):
            per_name[rule["name"]][0] += 1
            per_name[rule["name"]][1] += v.ok
            if v.reason:
                failures.append({"key": rec.get("key"), "check": rule["name"], "reason": v.reason})
        rules = [v.ok for v in rule_vs]
        results.append({"key": rec.get("key"), "hard": hard, "rules": rules, "reasons": [v.reason for v in rule_vs],
                        "prompt_pass": all(hard + rules), "soft_not_scored": len(rec.get("soft_constraints", []))})
    n_checks = sum(len(r["hard"]) + len(r["rules"]) for r in results)
    n_rules = sum(len(r["rules"]) for r in results)
    metrics = {"prompt_level": sum(r["prompt_pass"] for r in results) / len(results),
               "check_level": sum(sum(r["hard"]) + sum(r["rules"]) for r in results) / max(n_checks, 1),
               "rule_check_level": sum(sum(r["rules"]) for r in results) / max(n_rules, 1)}
    report = {"data": data, "responses": responses, "n_prompts": len(results), "n_rule_checks": n_rules,
              "n_hard": n_checks - n_rules, "soft_not_scored": sum(r["soft_not_scored"] for r in results),
              "metrics": metrics, "per_checker": {k: {"n": n, "pass": p / n} for k, (n, p) in sorted(per_name.items())},
              "check_failures": failures, "unmatched_responses": unmatched, "missing_responses": missing,
              "results": results}
    if out:
        write_atomic(out, to_json(report, indent=1, ensure_ascii=False) + "\n")
        try:
            os.remove(journal)
        except OSError:
            pass
    return report


def format_rule_report(report, top=20):
    lines = [f"scored {report['n_prompts']} prompts: {report['n_rule_checks']} rule checks (sandbox), "
             f"{report['n_hard']} hard constraints (verifiers); {report['soft_not_scored']} soft constraints "
             "not scored (they need the LLM judge)"]
    lines += [f"  {name:<18} {100 * value:6.2f}" for name, value in report["metrics"].items()]
    rows = sorted(report["per_checker"].items(), key=lambda kv: -kv[1]["n"])[:top]
    if rows:
        width = max(len(k) for k, _ in rows)
        lines.append(f"\n  {'rule checker':<{width}}  {'n':>5}  {'pass':>6}   (the {len(rows)} most frequent)")
        lines += [f"  {k:<{width}}  {r['n']:>5}  {100 * r['pass']:6.2f}" for k, r in rows]
    failures = report["check_failures"]
    if failures:
        lines.append(f"\n{len(failures)} rule checks failed with a reason (timeout, crash, refused, exception), e.g.:")
        lines += [f"  key {f['key']!r} {f['check']!r}: {f['reason']}" for f in failures[:10]]
    for name in ("unmatched_responses", "missing_responses"):
        if report[name]:
            lines.append(f"\nWARNING: {len(report[name])} {name.replace('_', ' ')} (not scored; listed in --out)")
    return "\n".join(lines)
