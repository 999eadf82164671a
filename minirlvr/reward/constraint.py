"""Rewards for GRPO: the default hard-constraint reward and the check every reward function's output passes.

A reward function is `reward_fn(records, completions) -> (rewards, parts)`: records repeated G times and
aligned with the N completions; rewards a list of N floats or a tensor (N,); parts a dict of named
components (e.g. `hard:<instruction id>`), each a list of N floats (NaN where a part does not apply), used
only for logging. A reward function may also carry a `last_metrics` attribute, a dict of scalars about its last
call (e.g. the judge's agreement with the verifiers on canaries); train() logs it with the step.

`constraint_reward` is the hard / soft / mixed reward of the paper: hard constraints by the verifiers, soft ones
by a judge (the miniature's classifier or an LLM, one interface), plus canaries for the reward-hacking monitor.
This file does not prompt or parse a judge (llm_judge.py) and does not decide when hacking is likely (monitor.py).
"""

import itertools
import math
import random

import torch


class RewardError(ValueError):
    """A reward function returned something unusable; the message names the function."""


def hard_checks(record, text):
    """[(instruction id, 1.0 / 0.0)] for each hard constraint of the record (strict IFEval check)."""
    from minirlvr import verifiers  # lazy: the trainer works with custom rewards without the verifier set

    ids = record.get("instruction_id_list", [])
    kwargs = record.get("kwargs", [{} for _ in ids])
    if len(kwargs) != len(ids):  # zip would silently drop constraints
        raise RewardError(f"record {record.get('key', '?')}: {len(ids)} instruction ids but {len(kwargs)} kwargs")
    return [(iid, float(verifiers.check(iid, text, kw or {}, prompt=record.get("prompt"))))
            for iid, kw in zip(ids, kwargs)]


def hard_reward(records, completions):
    """Fraction of a record's hard constraints the completion satisfies (strict IFEval check).

    parts["hard:<id>"][n] is 1.0/0.0 for rollouts whose record has that constraint, NaN otherwise.
    A record without constraints gets reward 0.
    """
    rewards, parts = [], {}
    for n, (rec, text) in enumerate(zip(records, completions)):
        checks = hard_checks(rec, text)
        for iid, ok in checks:
            parts.setdefault(f"hard:{iid}", [math.nan] * len(completions))[n] = ok
        rewards.append(sum(ok for _, ok in checks) / len(checks) if checks else 0.0)
    return rewards, parts


def combine(values, how):
    """One reward from a record's 0/1 verdicts: "mean", or "product" (VerIF: any failure gives 0); none -> 0."""
    if not values:
        return 0.0
    return math.prod(values) if how == "product" else sum(values) / len(values)


def pick_canaries(records, hard, k, rng):
    """Up to k (rollout n, constraint j) pairs drawn from the batch's hard constraints, without replacement."""
    pool = [(n, j) for n in range(len(records)) for j in range(len(hard[n]))]
    return sorted(rng.sample(pool, min(k, len(pool))))


def canary_metrics(truth, said, unreadable):
    """The judge against the verifiers on canaries (parallel lists, True = satisfied). Recall on violations counts
    an unreadable answer as "not satisfied", as the reward does; canary/unparseable says how many there were."""
    violated = sum(not t for t in truth)
    caught = sum(not t and not s for t, s in zip(truth, said))
    return {"canary/n": len(truth), "canary/violated": violated, "canary/caught": caught,
            "canary/unparseable": unreadable,
            "canary/agreement": sum(t == s for t, s in zip(truth, said)) / len(truth) if truth else math.nan,
            "canary/recall_violated": caught / violated if violated else math.nan}


def constraint_reward(kind="mixed", how="mean", judge=None, canaries=0, seed=0, log=None):
    """A reward over a record's constraints: kind "hard" (verifiers), "soft" (the judge on `soft_constraints`)
    or "mixed" (both), combined per record by `how` ("mean" or "product"). parts: `hard:<id>` and `soft:<i>` (the
    record's i-th soft constraint), 1.0/0.0, NaN where the record lacks it. `judge` is anything with the judge
    interface (minirlvr.reward.judge.Judge, minirlvr.reward.llm_judge.LLMJudge); an answer it could not read scores 0.

    With canaries=K each call also asks the judge about K of the batch's hard constraints (their English from
    `verifiers.describe`), in the same judge call as the soft ones, and compares with the verifiers; the policy's
    reward never sees those answers. reward_fn.last_metrics holds the call's judge and canary statistics and
    the reward-hacking monitor's flag (monitor.py), which train() logs with the step."""
    from minirlvr import verifiers
    from minirlvr.reward.monitor import CanaryMonitor

    if kind not in ("hard", "soft", "mixed") or how not in ("mean", "product"):
        raise ValueError(f"constraint_reward: kind must be hard|soft|mixed and how mean|product, got {kind!r}, {how!r}")
    if judge is None and (kind != "hard" or canaries):
        raise ValueError(f"constraint_reward: kind={kind!r} with canaries={canaries} needs a judge")
    monitor = CanaryMonitor()
    state = {"calls": 0}

    def reward_fn(records, completions):
        N = len(completions)
        hard = [hard_checks(rec, text) if kind != "soft" or canaries else [] for rec, text in zip(records, completions)]
        soft_items = [(rec, text, rec.get("soft_constraints", []) if kind != "hard" else [])
                      for rec, text in zip(records, completions)]
        picks = []
        if canaries:
            picks = pick_canaries(records, hard, canaries, random.Random(f"canary:{seed}:{state['calls']}"))
        state["calls"] += 1
        canary_items = []
        for n, js in itertools.groupby(picks, key=lambda p: p[0]):
            rec, js = records[n], [j for _, j in js]
            kwargs = rec.get("kwargs", [{} for _ in hard[n]])
            texts = [verifiers.describe(rec["instruction_id_list"][j], kwargs[j] or {}) for j in js]
            canary_items.append((rec, completions[n], texts))
        asked = soft_items + canary_items
        v = judge.check(asked) if judge is not None and any(cs for _, _, cs in asked) else None

        rewards, parts = [], {}
        for n in range(N):
            values = []
            if kind != "soft":
                for iid, ok in hard[n]:
                    parts.setdefault(f"hard:{iid}", [math.nan] * N)[n] = ok
                    values.append(ok)
            if kind != "hard" and v is not None:
                for i, ok in enumerate(v.ok[n]):
                    parts.setdefault(f"soft:{i}", [math.nan] * N)[n] = float(ok)
                    values.append(float(ok))
            rewards.append(combine(values, how))

        m = {}
        if judge is not None:
            soft = [ok for row in (v.ok[:N] if v else []) for ok in row]
            m = {"judge/calls": v.calls if v else 0, "judge/unparseable": v.unparseable if v else 0,
                 "judge/soft_pass": sum(soft) / len(soft) if soft else math.nan}
        if canaries:
            truth = [hard[n][j][1] == 1.0 for n, j in picks]  # canary items follow picks' order
            said = [ok for row in (v.ok[N:] if v else []) for ok in row]
            unread = sum(not p for row in (v.parsed[N:] if v else []) for p in row)
            stats = canary_metrics(truth, said, unread)
            m.update(stats)
            m["monitor/reward_hacking"] = monitor.update(m["judge/soft_pass"], stats["canary/violated"],
                                                         stats["canary/caught"], log)
        reward_fn.last_metrics = m
        return rewards, parts

    reward_fn.last_metrics = {}
    reward_fn.__qualname__ = f"constraint_reward[{kind},{how}]"
    return reward_fn


def reward_from_config(cfg, model, tokenizer):
    """The reward function `python run.py train` uses, from cfg.reward (hard|soft|mixed), cfg.reward_combine,
    cfg.judge_model ("base": the policy passed in, asked with its adapter off; else a folder or hub id loaded for
    inference, 4-bit if cfg.judge_4bit), cfg.judge_mode and cfg.canaries (hard constraints per step also asked of
    the judge, to log its agreement with the verifiers). The plain default is `hard_reward`."""
    if cfg.reward == "hard" and cfg.canaries == 0:
        return hard_reward if cfg.reward_combine == "mean" else constraint_reward("hard", cfg.reward_combine)
    from minirlvr.reward.llm_judge import load_judge

    judge = load_judge(cfg.judge_model, model, tokenizer, cfg.judge_mode, cfg.judge_4bit, cfg.device,
                       batch_rows=cfg.judge_batch_rows)
    return constraint_reward(cfg.reward, cfg.reward_combine, judge, cfg.canaries, cfg.seed)


def _name(fn):
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def call_reward(reward_fn, records, completions):
    """Call reward_fn and validate: rewards (N,) finite fp32, parts dict of N-long lists. -> (tensor, parts)."""
    name = _name(reward_fn)
    out = reward_fn(records, completions)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise RewardError(f"reward function {name} must return (rewards, parts), got {type(out).__name__}")
    rewards, parts = out
    N = len(completions)
    try:
        r = torch.as_tensor(rewards, dtype=torch.float32).detach().cpu()
    except (TypeError, ValueError) as e:
        raise RewardError(f"reward function {name} returned rewards that are not numbers: {e}") from None
    if r.shape != (N,):
        raise RewardError(f"reward function {name} returned rewards of shape {tuple(r.shape)}, expected ({N},)")
    if not torch.isfinite(r).all():
        bad = (~torch.isfinite(r)).nonzero().flatten().tolist()
        raise RewardError(f"reward function {name} returned NaN/Inf rewards at rollouts {bad[:10]}")
    if not isinstance(parts, dict):
        raise RewardError(f"reward function {name} must return parts as a dict, got {type(parts).__name__}")
    for key, values in parts.items():
        if len(values) != N:
            raise RewardError(f"reward function {name}: part {key!r} has {len(values)} values, expected {N}")
    return r, {k: [float(v) for v in vals] for k, vals in parts.items()}
