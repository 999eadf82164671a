"""Rewards for GRPO: the default hard-constraint reward and the check every reward function's output passes.

A reward function is `reward_fn(records, completions) -> (rewards, parts)`: records repeated G times and
aligned with the N completions; rewards a list of N floats or a tensor (N,); parts a dict of named
components (e.g. `hard:<instruction id>`), each a list of N floats (NaN where a part does not apply), used
only for logging. A reward function may also carry a `last_metrics` attribute, a dict of scalars about its last
call (e.g. the judge's agreement with the verifiers on canaries); train() logs it with the step.
This file does not call an LLM judge (see the judge module for soft constraints).
"""

import math

import torch


class RewardError(ValueError):
    """A reward function returned something unusable; the message names the function."""


def hard_reward(records, completions):
    """Fraction of a record's hard constraints the completion satisfies (strict IFEval check).

    parts["hard:<id>"][n] is 1.0/0.0 for rollouts whose record has that constraint, NaN otherwise.
    A record without constraints gets reward 0.
    """
    from minirlvr import verifiers  # lazy: the trainer works with custom rewards without the verifier set

    rewards, parts = [], {}
    for n, (rec, text) in enumerate(zip(records, completions)):
        ids = rec.get("instruction_id_list", [])
        kwargs = rec.get("kwargs", [{} for _ in ids])
        if len(kwargs) != len(ids):  # zip would silently drop constraints
            raise RewardError(f"record {rec.get('key', n)}: {len(ids)} instruction ids but {len(kwargs)} kwargs")
        prompt = rec.get("prompt")
        oks = []
        for iid, kw in zip(ids, kwargs):
            ok = float(verifiers.check(iid, text, kw or {}, prompt=prompt))
            parts.setdefault(f"hard:{iid}", [math.nan] * len(completions))[n] = ok
            oks.append(ok)
        rewards.append(sum(oks) / len(oks) if oks else 0.0)
    return rewards, parts


def reward_from_config(cfg, model, tokenizer):
    """The reward function `python run.py train` uses: cfg.reward picks it (the policy's model and tokenizer are
    passed so that a judge can be the policy's own base with the adapter off)."""
    from minirlvr.config import ConfigError

    if cfg.reward == "hard":
        return hard_reward
    raise ConfigError(f"--reward={cfg.reward} needs the LLM judge, which this version does not have yet")


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
