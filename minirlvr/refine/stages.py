"""The paper's data refinement for real models, as stages over a data file (the command: `python run.py refine`,
minirlvr/commands/refine.py): the critic (the verifiers' conflict table, then an LLM critic), at most one soft
constraint per prompt, and the learnability pilot (sample the starting policy, keep what it neither always nor never
passes). Each stage appends its verdicts to a work folder, so an interrupted run resumes where it stopped.
The filters themselves are pure functions in filters.py; this file feeds them models and records.
"""

import json
import os
import random
from dataclasses import asdict

from minirlvr.refine import filters
from minirlvr import verifiers
from minirlvr.reward import rule_checks
from minirlvr.engine.chat import complete
from minirlvr.engine.progress import Progress
from minirlvr.refine.critic import review
from minirlvr.data import DataError, iter_jsonl, prompt_text, read_records, to_json, write_atomic
from minirlvr.reward.constraint import call_reward

PASS = 1.0 - 1e-6  # a sample passes when its reward is 1: it satisfied every constraint


class RefineError(ValueError):
    """Bad input or settings for refine; the message names the file, line and field or the flag."""


# ---------------------------------------------------------------------------------------------- input
def read_data(path):
    """Records with unique keys and valid hard kwargs and rule checks; raw dataset files are refused."""
    records = read_records(path)
    seen = {}
    for (lineno, row), rec in zip(iter_jsonl(path), records):
        where = f"{path}:{lineno}"
        if "ground_truth" in row or "checkers" in row:
            raise DataError(f"{where}: this looks like a raw RLVR / VerInstruct file; convert it first: "
                            "python run.py data convert --format rlvr|verinstruct --input FILE --out RECORDS")
        key = rec.setdefault("key", lineno)
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise DataError(f"{where}: field 'key' must be a string or an integer")
        if key in seen:
            raise DataError(f"{where}: field 'key' {key!r} repeats the key of line {seen[key]}")
        seen[key] = lineno
        for j, (iid, kw) in enumerate(zip(rec.get("instruction_id_list", []), rec.get("kwargs", []))):
            try:
                verifiers.validate_kwargs(iid, kw)
            except verifiers.VerifierError as e:
                raise DataError(f"{where}: field 'instruction_id_list[{j}]' / 'kwargs[{j}]': {e}") from None
        rule_checks.validate(rec, where)
    if not records:
        raise DataError(f"{path}: no records")
    return records


def _progress(path):
    """{key: row} of a progress file; a torn last line (a kill mid-write) is ignored, later rows win."""
    done = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                done[row["key"]] = row
    return done


def _chunks(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def _append(path, rows):
    with open(path, "a", encoding="utf-8") as f:  # one write per chunk
        f.write("".join(to_json(r, ensure_ascii=False) + "\n" for r in rows))


def open_work(work, data_hash, settings):
    """Create or reopen the work folder; a folder made for other data or settings is an error."""
    os.makedirs(work, exist_ok=True)
    state_path = os.path.join(work, "state.json")
    state = {"data_sha256": data_hash, "settings": settings}
    if os.path.exists(state_path):
        with open(state_path, encoding="utf-8") as f:
            old = json.load(f)
        if old != state:
            raise RefineError(f"work folder {work} belongs to another refine job (other data or settings): "
                              "delete it, or pass another --work")
    else:
        write_atomic(state_path, to_json(state, indent=1) + "\n")


# ---------------------------------------------------------------------------------------------- stages
def stage_critic(records, critic_ask, work, chunk, on_unparsed, log):
    path = os.path.join(work, "critic.jsonl")
    done = _progress(path)
    todo = [r for r in records if r["key"] not in done]
    if len(todo) < len(records):
        log(f"critic: {len(records) - len(todo)} prompts already reviewed (resumed from {path})")
    progress = Progress(len(records), len(records) - len(todo), "critic", "refine critic", "prompt")
    for part in _chunks(todo, chunk):
        rows = [dict(asdict(d), key=r["key"]) for r, d in zip(part, review(part, critic_ask, on_unparsed))]
        _append(path, rows)
        done.update((row["key"], row) for row in rows)
        progress.update(len(part))
    progress.close()
    return [done[r["key"]] for r in records]


def stage_one_soft(records, seed):
    """(records with at most one soft constraint, how many were trimmed, how many cut texts were not found)."""
    out, trimmed, not_found = [], 0, 0
    for r in records:
        s = filters.one_soft_record(r, random.Random(f"one_soft:{seed}:{r['key']}"))
        if s is not r:
            trimmed += 1
            cut = [t for t in r["soft_constraints"] if t not in s["soft_constraints"]]
            not_found += sum(" " + t not in prompt_text(r) for t in cut)
        out.append(s)
    return out, trimmed, not_found


def stage_pilot(records, sample, reward_fn, work, samples, chunk, seed, log):
    """{key: pilot row} with each record's G rewards and pass rate."""
    path = os.path.join(work, "pilot.jsonl")
    done = _progress(path)
    parts = _chunks(records, chunk)
    todo = [(c, part) for c, part in enumerate(parts) if any(r["key"] not in done for r in part)]
    if len(todo) < len(parts):
        log(f"pilot: {len(parts) - len(todo)} of {len(parts)} chunks already sampled (resumed from {path})")
    progress = Progress(len(records), sum(r["key"] in done for r in records), "pilot", "refine pilot", "prompt")
    for c, part in todo:
        # the seed depends on the chunk only, so a resumed run samples exactly what an uninterrupted one would
        texts = sample(part, samples, seed * 100003 + c)
        rewards, _ = call_reward(reward_fn, [r for r in part for _ in range(samples)], texts)
        rows = []
        for i, r in enumerate(part):
            rs = rewards[i * samples:(i + 1) * samples].tolist()
            rows.append({"key": r["key"], "rewards": rs, "pass_rate": sum(x >= PASS for x in rs) / samples})
        _append(path, rows)
        progress.update(sum(r["key"] not in done for r in part))
        done.update((row["key"], row) for row in rows)
    progress.close()
    return done


def refine(records, critic_ask, sample, reward_fn, work, pilot_samples=8, keep="mixed-only", seed=0, chunk=16,
           on_unparsed="keep", log=print):
    """(kept records, report): critic -> one soft constraint -> pilot, resumable through `work`.

    critic_ask(prompts) -> answers (critic.model_ask); sample(records, samples, seed) -> texts, prompt-major
    (policy_sampler); reward_fn(records, completions) -> (rewards, parts), the training reward."""
    if keep not in filters.KEEP:
        raise RefineError(f"--keep must be one of {', '.join(filters.KEEP)}, got {keep!r}")
    dropped, stages = [], []

    decisions = stage_critic(records, critic_ask, work, chunk, on_unparsed, log)
    kept = [r for r, d in zip(records, decisions) if d["keep"]]
    counts = {}
    for r, d in zip(records, decisions):
        if not d["keep"]:
            counts[d["kind"]] = counts.get(d["kind"], 0) + 1
            dropped.append({"key": r["key"], "stage": "critic", "reason": f"{d['kind']}: {d['reason']}"})
    stages.append({"stage": "critic", "in": len(records), "out": len(kept), "dropped": counts,
                   "unparsed_kept": sum(d["kind"] == "unparsed" and d["keep"] for d in decisions)})

    kept, trimmed, not_found = stage_one_soft(kept, seed)
    stages.append({"stage": "one_soft", "in": len(kept), "out": len(kept), "dropped": {}, "trimmed": trimmed,
                   "cut_text_not_in_prompt": not_found})

    if pilot_samples > 0 and kept:
        pilot = stage_pilot(kept, sample, reward_fn, work, pilot_samples, chunk, seed, log)
        rates = [pilot[r["key"]]["pass_rate"] for r in kept]
        survivors = filters.learnable(kept, rates, low=filters.KEEP[keep], high=1.0)
        alive = {id(r) for r in survivors}
        counts = {}
        for r, rate in zip(kept, rates):
            if id(r) not in alive:
                kind = "all_pass" if rate >= 1.0 else "all_fail"
                counts[kind] = counts.get(kind, 0) + 1
                what = "every" if kind == "all_pass" else "no"
                dropped.append({"key": r["key"], "stage": "pilot",
                                "reason": f"{kind}: {what} one of {pilot_samples} samples passed (pass rate {rate:g})"})
        stages.append({"stage": "pilot", "in": len(kept), "out": len(survivors), "dropped": counts,
                       "samples": pilot_samples, "keep": keep,
                       "mean_pass_rate": round(sum(rates) / len(rates), 4)})
        kept = survivors
    else:
        stages.append({"stage": "pilot", "in": len(kept), "out": len(kept), "dropped": {}, "skipped": True})
    return kept, {"stages": stages, "kept": len(kept), "dropped": dropped}


# ---------------------------------------------------------------------------------------------- models
def policy_sampler(model, tokenizer, max_new_tokens=256, temperature=1.0, top_p=1.0, batch_rows=64):
    """sample(records, samples, seed) -> texts through the kit's sampler (chat.complete), prompt-major."""
    def sample(records, samples, seed):
        return complete(model, tokenizer, records, samples=samples, max_new_tokens=max_new_tokens,
                        temperature=temperature, top_p=top_p, seed=seed, batch_rows=batch_rows, desc="pilot").texts
    return sample


# ================================================================================================================
# THE PILOT'S REWARD: the one place where the CLI builds it. It must be the training reward. Records without soft
# constraints: the verifiers (reward.hard_reward, through reward_from_config), plus the sandboxed dataset rule
# checks when records carry them (rule_checks.make_reward). Records with soft constraints need the LLM judge:
# reward_from_config(reward="mixed") builds it once the kit has one; until then this is a clear error.
# ================================================================================================================
def pilot_reward(records, args, model, tokenizer):
    """The training reward the pilot scores with: the verifiers for hard constraints, the LLM judge for soft ones
    (mean over a record's constraints), or the dataset's rule checks (sandboxed). The judge is the starting
    policy itself unless --judge-model names another model: nothing trains here, so it cannot drift."""
    from minirlvr.reward.llm_judge import LLMJudge, load_judge
    from minirlvr.reward.constraint import constraint_reward, hard_reward

    soft = sum(bool(r.get("soft_constraints")) for r in records)
    ruled = sum(bool(r.get("rule_checks")) for r in records)
    if ruled and not args.run_dataset_code:
        raise RefineError(f"{ruled} records carry rule checks from a dataset file: the pilot runs them only in the "
                          "sandbox, with --run-dataset-code")
    if ruled and soft:
        raise RefineError(f"{ruled} records carry rule checks and {soft} soft constraints: the pilot reward for "
                          "both (judge x rule checks) is not built yet; use --pilot-samples 0")
    if ruled:
        return rule_checks.make_reward(allow=True)
    if not soft:
        return hard_reward
    if args.judge_model == "base":
        judge = LLMJudge(model, tokenizer, args.judge_mode, adapter_off=hasattr(model, "disable_adapter"))
    else:
        judge = load_judge(args.judge_model, mode=args.judge_mode, load_in_4bit=args.load_in_4bit,
                           option="--judge-model")
    return constraint_reward("mixed", "mean", judge)
