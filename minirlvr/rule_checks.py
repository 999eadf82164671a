"""Score the dataset rule checks a record carries (VerInstruct's [rule] checkers, kept as Python source in the
record's "rule_checks": [{"name", "code"}], see datasets.py) through the sandbox (sandbox.py), together with
the record's hard ids (the kit's verifiers):

    verdicts(records, responses, allow)       per response, a sandbox Verdict per rule check
    make_reward(allow)                        reward_fn(records, completions): mean over hard ids and rule checks
    verify(data, responses, out, allow)       `python run.py verify` on VerInstruct data (raw or converted)

A check that times out, crashes or is refused scores as failed; its reason goes to `log` (stderr by default)
and, for verify, into the report; the caller goes on. Nothing here runs without allow=True (--run-dataset-code).
verify with --out appends each verdict to OUT.verdicts.jsonl as it comes and skips the checks already there, so
a run that was killed resumes where it stopped; the file is removed once the report is written.
Soft constraints are not judged here (the LLM judge's job): verify counts them as not scored.
"""

import hashlib
import json
import math
import os
import sys
from collections import defaultdict

from tqdm import tqdm

from minirlvr import verifiers
from minirlvr.data import DataError, iter_jsonl, prompt_text, read_records, write_atomic
from minirlvr.reward import hard_reward
from minirlvr.sandbox import Check, SandboxError, Verdict, run_checks


def _stderr(msg):
    tqdm.write(msg, file=sys.stderr)


def validate(record, where):
    """Check the shape of a record's rule_checks (the code itself is checked only by running it)."""
    rules = record.get("rule_checks", [])
    if not isinstance(rules, list) or not all(
            isinstance(r, dict) and isinstance(r.get("name"), str) and isinstance(r.get("code"), str) for r in rules):
        raise DataError(f"{where}: field 'rule_checks' must be a list of {{'name', 'code'}} objects with strings")
    return record


def _journal_key(check):
    return hashlib.sha256(json.dumps([check.code, check.instruction, check.response]).encode()).hexdigest()


def _read_journal(path):
    """{check key: Verdict} from a journal an earlier, interrupted run wrote (a torn last line is skipped)."""
    done = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                    if isinstance(row.get("key"), str) and type(row.get("ok")) is bool and (
                            row.get("reason") is None or isinstance(row.get("reason"), str)):
                        done[row["key"]] = Verdict(row["ok"], row["reason"])
                except (ValueError, AttributeError):
                    continue
    except FileNotFoundError:
        pass
    return done


def verdicts(records, responses, allow, log=_stderr, timeout_s=2.0, memory_mb=512, journal=None):
    """[[Verdict per rule check] per response]; failures with a reason are logged. With a journal path, each
    verdict is appended to it as it comes and checks already in it are not run again (a killed run resumes)."""
    owners, checks = [], []
    for n, (rec, text) in enumerate(zip(records, responses)):
        for rule in rec.get("rule_checks", []):
            owners.append((n, rule["name"]))
            checks.append(Check(rule["code"], prompt_text(rec), text))
    if checks and not allow:
        run_checks(checks, allow=False)  # raises: without the flag nothing runs and no journal is written
    keys = [_journal_key(c) for c in checks] if journal else list(range(len(checks)))
    done = _read_journal(journal) if journal else {}
    todo = [k for k, key in enumerate(keys) if key not in done]
    with open(journal, "a", encoding="utf-8") if journal else open(os.devnull, "w") as f:
        def record(j, v):
            done[keys[todo[j]]] = v
            f.write(json.dumps({"key": keys[todo[j]], "ok": v.ok, "reason": v.reason}) + "\n")
            f.flush()

        if todo:
            run_checks([checks[k] for k in todo], allow=allow, timeout_s=timeout_s, memory_mb=memory_mb,
                       on_verdict=record)
    out = [[] for _ in responses]
    for (n, name), key in zip(owners, keys):
        v = done[key]
        out[n].append(v)
        if v.reason and log:
            log(f"rule check {name!r} of record {records[n].get('key')!r} failed: {v.reason}")
    return out


def make_reward(allow, log=_stderr, timeout_s=2.0, memory_mb=512):
    """reward_fn(records, completions) -> (rewards, parts): the fraction of a record's hard ids and rule checks a
    completion passes (0 for a record with neither). parts: "hard:<id>" and "rule:<name>", NaN where absent;
    last_metrics: how many rule checks failed with a reason (timeout, crash, refused, exception)."""
    def reward_fn(records, completions):
        hard, parts = hard_reward(records, completions)
        ruled = verdicts(records, completions, allow, log, timeout_s, memory_mb)
        rewards, errors = [], 0
        for n, (rec, rule_vs) in enumerate(zip(records, ruled)):
            n_hard = len(rec.get("instruction_id_list", []))
            passed = round(hard[n] * n_hard)
            for rule, v in zip(rec.get("rule_checks", []), rule_vs):
                column = parts.setdefault(f"rule:{rule['name']}", [math.nan] * len(completions))
                column[n] = float(v.ok) if math.isnan(column[n]) else min(column[n], float(v.ok))  # a name twice
                passed += v.ok
                errors += v.reason is not None
            total = n_hard + len(rule_vs)
            rewards.append(passed / total if total else 0.0)
        reward_fn.last_metrics = {"rule_check_errors": errors}
        return rewards, parts
    reward_fn.last_metrics = {}
    return reward_fn


# ---------------------------------------------------------------------------------------------- verify
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
    from minirlvr.datasets import read_verinstruct

    first = next(iter_jsonl(path), (None, {}))[1]
    if "rule_checks" in first:
        return [validate(r, f"{path}:{k + 1}") for k, r in enumerate(read_records(path))]
    return read_verinstruct(path)[0]


def verify(data, responses, out=None, allow=False, log=_stderr):
    """Score a response file against VerInstruct data: hard ids by the verifiers, rule checks in the sandbox."""
    from minirlvr.verify_cli import match, read_responses

    records = read_rule_data(data)
    pairs, unmatched, missing = match(data, records, responses, read_responses(responses))
    if not pairs:
        raise DataError(f"no response in {responses} matches a prompt in {data}")
    recs, texts = [records[k] for k, _ in pairs], [t for _, t in pairs]
    journal = f"{out}.verdicts.jsonl" if out else None  # verdicts as they come: a killed run resumes from here
    ruled = verdicts(recs, texts, allow, log, journal=journal)
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
        write_atomic(out, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        try:
            os.remove(journal)
        except OSError:
            pass
    return report


def format_report(report, top=20):
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


def verify_main(args):
    """`python run.py verify` on VerInstruct data (verify_cli.main dispatches here)."""
    try:
        report = verify(args.data, args.responses, args.out, args.run_dataset_code)
    except (DataError, SandboxError, OSError) as e:
        sys.exit(f"verify: error: {e}")
    print(format_report(report))
    if args.out:
        print(f"\nreport written to {args.out}")
    return report
