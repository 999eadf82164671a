"""Score the dataset rule checks a record carries (VerInstruct's [rule] checkers, kept as Python source in the
record's "rule_checks": [{"name", "code"}], see datasets.py) through the sandbox (sandbox.py), together with
the record's hard ids (the kit's verifiers):

    verdicts(records, responses, allow)       per response, a sandbox Verdict per rule check
    make_reward(allow)                        reward_fn(records, completions): mean over hard ids and rule checks

(`python run.py verify` on VerInstruct data scores with `verdicts`: evaluation/verify.py.) With a journal path,
each verdict is appended to it as it comes and checks already there are skipped, so a killed run resumes where it
stopped.

A check that times out, crashes or is refused scores as failed; its reason goes to `log` (stderr by default)
and, for verify, into its report; the caller goes on. Nothing here runs without allow=True (--run-dataset-code).
Soft constraints are not judged here (the LLM judge's job): verify counts them as not scored.
"""

import hashlib
import json
import math
import os
import sys

from tqdm import tqdm

from minirlvr.data import DataError, prompt_text, to_json
from minirlvr.engine.progress import Progress
from minirlvr.reward.constraint import hard_reward
from minirlvr.reward.sandbox import Check, Verdict, run_checks


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


def verdicts(records, responses, allow, log=_stderr, timeout_s=2.0, memory_mb=512, journal=None, progress=False):
    """[[Verdict per rule check] per response]; failures with a reason are logged. With a journal path, each
    verdict is appended to it as it comes and checks already in it are not run again (a killed run resumes).
    progress: report checks done (engine/progress.py), for `verify`; training's reward calls stay quiet."""
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
    bar = Progress(len(checks), len(checks) - len(todo), "rule checks", unit="check", enabled=progress)
    with open(journal, "a", encoding="utf-8") if journal else open(os.devnull, "w") as f:
        def record(j, v):
            done[keys[todo[j]]] = v
            f.write(to_json({"key": keys[todo[j]], "ok": v.ok, "reason": v.reason}) + "\n")
            f.flush()
            bar.update(1)

        if todo:
            run_checks([checks[k] for k in todo], allow=allow, timeout_s=timeout_s, memory_mb=memory_mb,
                       on_verdict=record)
    bar.close()
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
