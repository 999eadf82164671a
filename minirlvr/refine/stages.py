"""`python run.py refine --data FILE --model M --out FILE`: the paper's data refinement for real models, in order:

1. critic: the verifiers' conflict table, then an LLM critic (critic.py) on every prompt: the policy's own base
   with its adapter off, or --critic-model;
2. at most one soft constraint per prompt (refine.one_soft, the others cut from the prompt text);
3. learnability pilot: --pilot-samples samples per prompt from the starting policy (the kit's sampler, the
   training temperature), scored with the training reward; --keep says which pass rates stay (see --help).

It prints and writes how many prompts each stage dropped and why (refine_report.json next to --out: per-stage
counts and one reason per dropped record) and writes the kept records to --out (atomically, at the end only).
Resumable: each model stage appends its finished prompts, a chunk at a time, to JSONL files in a work folder
(--work, default OUT.work/); a rerun with the same inputs and settings skips them. The work folder records a
hash of the data and the settings, and refuses to resume a different job.

The Python API is `refine(records, critic_ask, sample, reward_fn, work)`; models and the reward are built only
in main(). This file does not train.
"""

import argparse
import hashlib
import json
import os
import random
import sys
from dataclasses import asdict

from tqdm import tqdm

from minirlvr.refine import filters
from minirlvr import verifiers
from minirlvr.reward import rule_checks
from minirlvr.engine.chat import complete
from minirlvr.refine.critic import model_ask, review
from minirlvr.data import DataError, iter_jsonl, prompt_text, read_records, write_atomic, write_jsonl
from minirlvr.engine.model import ModelError, load_for_inference
from minirlvr.reward.constraint import call_reward
from minirlvr.reward.sandbox import RUN_FLAG, SandboxError

KEEP = {"mixed-only": 0.0, "all-fail": -1.0}  # --keep -> the lower bound of refine.learnable (pass rate > low)
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
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


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
        write_atomic(state_path, json.dumps(state, indent=1) + "\n")


# ---------------------------------------------------------------------------------------------- stages
def stage_critic(records, critic_ask, work, chunk, on_unparsed, log):
    path = os.path.join(work, "critic.jsonl")
    done = _progress(path)
    todo = [r for r in records if r["key"] not in done]
    if len(todo) < len(records):
        log(f"critic: {len(records) - len(todo)} prompts already reviewed (resumed from {path})")
    for part in tqdm(_chunks(todo, chunk), desc="critic", unit="chunk", disable=None):
        rows = [dict(asdict(d), key=r["key"]) for r, d in zip(part, review(part, critic_ask, on_unparsed))]
        _append(path, rows)
        done.update((row["key"], row) for row in rows)
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
    for c, part in tqdm(todo, desc="pilot", unit="chunk", disable=None):
        # the seed depends on the chunk only, so a resumed run samples exactly what an uninterrupted one would
        texts = sample(part, samples, seed * 100003 + c)
        rewards, _ = call_reward(reward_fn, [r for r in part for _ in range(samples)], texts)
        rows = []
        for i, r in enumerate(part):
            rs = rewards[i * samples:(i + 1) * samples].tolist()
            rows.append({"key": r["key"], "rewards": rs, "pass_rate": sum(x >= PASS for x in rs) / samples})
        _append(path, rows)
        done.update((row["key"], row) for row in rows)
    return done


def refine(records, critic_ask, sample, reward_fn, work, pilot_samples=8, keep="mixed-only", seed=0, chunk=16,
           on_unparsed="keep", log=print):
    """(kept records, report): critic -> one soft constraint -> pilot, resumable through `work`.

    critic_ask(prompts) -> answers (critic.model_ask); sample(records, samples, seed) -> texts, prompt-major
    (policy_sampler); reward_fn(records, completions) -> (rewards, parts), the training reward."""
    if keep not in KEEP:
        raise RefineError(f"--keep must be one of {', '.join(KEEP)}, got {keep!r}")
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
        survivors = filters.learnable(kept, rates, low=KEEP[keep], high=1.0)
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


def _load(path, what, **kwargs):
    try:
        return load_for_inference(path, **kwargs)
    except (ModelError, OSError, ValueError) as e:
        raise RefineError(f"{what} {path!r} cannot be loaded: {e}") from None


def build_parser():
    p = argparse.ArgumentParser(prog="python run.py refine", description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="records (JSONL, the kit's format; convert raw datasets first)")
    p.add_argument("--model", required=True, help="the starting policy: a model folder or hub id")
    p.add_argument("--adapter", help="a peft LoRA adapter folder on --model (the policy to start from)")
    p.add_argument("--load-in-4bit", action="store_true", help="load --model in 4-bit NF4")
    p.add_argument("--critic-model", help="the critic: a chat model folder or hub id (default: --model's base, "
                                          "adapter off)")
    p.add_argument("--critic-4bit", action="store_true", help="load --critic-model in 4-bit NF4")
    p.add_argument("--critic-tokens", type=int, default=64, help="max new tokens of a critic answer (greedy)")
    p.add_argument("--critic-unparsed", choices=["keep", "drop"], default="keep",
                   help="what happens to a prompt whose critic answer has no verdict (counted either way)")
    p.add_argument("--judge-model", default="base",
                   help="the LLM judge for soft constraints in the pilot reward (default: the starting policy)")
    p.add_argument("--judge-mode", choices=["pointwise", "batched"], default="pointwise",
                   help="one constraint per judge call, or all of a record's in one")
    p.add_argument("--out", required=True, help="the refined records (JSONL, written at the end)")
    p.add_argument("--report", help="the report (default: refine_report.json next to --out)")
    p.add_argument("--work", help="progress files for resuming (default: OUT.work/)")
    p.add_argument("--pilot-samples", type=int, default=8, help="G samples per prompt in the pilot (0: no pilot)")
    p.add_argument("--keep", choices=list(KEEP), default="mixed-only",
                   help="which pilot pass rates stay; a sample passes when its reward is 1 (every constraint "
                        "satisfied), a prompt's pass rate is the fraction of its G samples that pass. mixed-only: "
                        "pass rate strictly between 0 and 1 (some samples pass, some fail: GRPO gets a non-zero "
                        "advantage). all-fail: also keep prompts no sample passed (pass rate 0). Prompts every "
                        "sample passed are dropped either way (nothing to learn).")
    p.add_argument("--max-new-tokens", type=int, default=256, help="pilot completion length")
    p.add_argument("--temperature", type=float, default=1.0, help="pilot sampling temperature (the training one)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--batch-rows", type=int, default=64, help="rows (prompts x samples) decoded together")
    p.add_argument("--chunk", type=int, default=16, help="prompts per progress write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument(RUN_FLAG, dest="run_dataset_code", action="store_true",
                   help="run the records' dataset rule checks (VerInstruct) in the sandbox during the pilot")
    return p


def format_report(report):
    lines = []
    for s in report["stages"]:
        why = ", ".join(f"{n} {k}" for k, n in s["dropped"].items()) or "none"
        extra = {"critic": f"; {s.get('unparsed_kept', 0)} unparsed answers kept",
                 "one_soft": f"; {s.get('trimmed', 0)} prompts trimmed to one soft constraint",
                 "pilot": " (skipped)" if s.get("skipped") else f"; mean pass rate {s.get('mean_pass_rate')}"}
        lines.append(f"  {s['stage']:<9} {s['in']:>6} -> {s['out']:<6} dropped: {why}{extra[s['stage']]}")
    return "\n".join(lines)


def main(argv=None):
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    report_path = args.report or os.path.join(os.path.dirname(os.path.abspath(args.out)), "refine_report.json")
    work = args.work or args.out + ".work"
    try:
        if args.pilot_samples < 0 or args.chunk < 1:
            raise RefineError("--pilot-samples must be >= 0 and --chunk >= 1")
        records = read_data(args.data)
        model, tokenizer = _load(args.model, "--model", adapter=args.adapter, load_in_4bit=args.load_in_4bit,
                                 device=args.device)
        if args.critic_model:
            c_model, c_tok = _load(args.critic_model, "--critic-model", load_in_4bit=args.critic_4bit,
                                   device=args.device)
            ask = model_ask(c_model, c_tok, max_new_tokens=args.critic_tokens, batch_rows=args.batch_rows)
        else:
            ask = model_ask(model, tokenizer, adapter_off=True, max_new_tokens=args.critic_tokens,
                            batch_rows=args.batch_rows)
        reward_fn = pilot_reward(records, args, model, tokenizer) if args.pilot_samples else None
        with open(args.data, "rb") as f:
            data_hash = hashlib.sha256(f.read()).hexdigest()
        settings = {k: getattr(args, k) for k in ("model", "adapter", "load_in_4bit", "critic_model", "critic_4bit",
                                                  "critic_tokens", "critic_unparsed", "judge_model", "judge_mode", "pilot_samples",
                                                  "max_new_tokens", "temperature", "top_p", "chunk", "seed")}
        open_work(work, data_hash, settings)
        sample = policy_sampler(model, tokenizer, args.max_new_tokens, args.temperature, args.top_p, args.batch_rows)
        kept, report = refine(records, ask, sample, reward_fn, work, args.pilot_samples, args.keep, args.seed,
                              args.chunk, args.critic_unparsed)
    except (DataError, RefineError, SandboxError) as e:
        sys.exit(f"refine: error: {e}")
    report = {"data": args.data, "out": args.out, "work": work, "settings": dict(settings, keep=args.keep), **report}
    write_jsonl(args.out, kept)
    write_atomic(report_path, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(f"refine: {len(records)} prompts -> {len(kept)} kept\n{format_report(report)}")
    print(f"records written to {args.out}, report to {report_path}")
    if not kept:
        print("WARNING: no prompt survived refinement", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
