"""The paper's data refinement, in three small filters applied in this order:

1. critic: drop a prompt whose hard constraints conflict (`hard_conflict`, IFEval's table) or that a critic
   judges infeasible: in the miniature the world's writer asked to follow every constraint at once
   (miniature/parts.py `world_critic`), on a real model an LLM that answers KEEP/DROP (critic.py).
2. at most one soft constraint per prompt (the others are removed from the prompt text and the record).
3. learnability: keep prompts whose pass rate in a short pilot (k samples from the SFT policy, scored with
   the training reward) is strictly between `low` and `high`: a group of all-equal rewards has zero
   advantage, so it teaches nothing and only costs time.

The pilot's sampling lives with the parts that own a model (miniature/parts.py, refine_cli.py); this file only
takes its pass rates.
"""

import itertools

from minirlvr import verifiers


def hard_conflict(record):
    """The first conflicting pair of hard ids, or None."""
    for a, b in itertools.combinations(record.get("instruction_id_list", []), 2):
        if b in verifiers.conflicts(a) or a in verifiers.conflicts(b):
            return a, b
    return None


def one_soft(record, rng):
    """The record with at most one (random) soft constraint; the others leave the prompt text too."""
    soft = record.get("soft_constraints", [])
    if len(soft) <= 1:
        return record
    keep = rng.randrange(len(soft))
    prompt = record["prompt"]
    for j, text in enumerate(soft):
        if j != keep:
            prompt = prompt.replace(" " + text, "", 1)
    out = dict(record, prompt=prompt, soft_constraints=[soft[keep]])
    if "world_soft" in record:
        out["world_soft"] = [record["world_soft"][keep]]
    return out


# refine --keep -> learnable's `low`: "mixed-only" keeps pass rates strictly between 0 and 1, "all-fail" also 0
KEEP = {"mixed-only": 0.0, "all-fail": -1.0}


def learnable(records, pass_rates, low=0.0, high=1.0):
    """Records whose pilot pass rate is strictly between low and high."""
    if len(records) != len(pass_rates):
        raise ValueError(f"learnable: {len(records)} records but {len(pass_rates)} pass rates")
    return [r for r, p in zip(records, pass_rates) if low < p < high]


def one_soft_record(record, rng):
    """one_soft for any record: in a chat record the last user message plays the prompt."""
    if "prompt" in record:
        return one_soft(record, rng)
    messages = record["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    out = one_soft(dict(record, prompt=messages[last]["content"]), rng)
    text = out.pop("prompt")
    out["messages"] = [dict(m, content=text) if i == last else m for i, m in enumerate(messages)]
    return out
