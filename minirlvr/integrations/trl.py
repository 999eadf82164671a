"""The kit's rewards as a TRL reward function, and the kit's records as rows of a TRL dataset.

    from trl import GRPOConfig, GRPOTrainer
    from minirlvr.integrations.trl import reward_function, to_dataset

    train = to_dataset("data/mixed.jsonl")                    # prompt + key + the record's constraint columns
    trainer = GRPOTrainer(model, reward_funcs=reward_function(judge=my_judge), args=GRPOConfig(...),
                          train_dataset=train)

TRL's GRPOTrainer (read in 0.20 and 1.16) calls a reward function as f(prompts=..., completions=...,
completion_ids=..., **columns, trainer_state=..., ...): every dataset column but `prompt`, one value per completion
(each prompt's row repeated G times), plus TRL's own extras, which this reward ignores. The columns it reads are
the record format's: `instruction_id_list` and `kwargs` (hard constraints), `soft_constraints` (judged) and `key`
(to name a row in errors), so an IFEval-format dataset (string prompts) works as it is. `datasets` pads every
`kwargs` dict with the other instructions' fields set to None; the verifiers drop those, as for IFEval's release.

The numbers are the kit's own (reward.constraint_reward on the rebuilt records, hard constraints strict). This file
imports neither TRL nor `datasets` at import time, and nothing outside minirlvr.integrations imports it.
"""

from minirlvr.data import DataError
from minirlvr.integrations.common import (HARD, KWARGS, READS, SOFT, chat_messages, check_options, constraints, read,
                                         score)


def completion_text(completion):
    """The text to check: a plain completion as is; a conversational one (a list of messages) its last assistant
    message's content, the final answer when tool calls came before it."""
    if isinstance(completion, str):
        return completion
    said = [m for m in completion if m.get("role") == "assistant"]
    if not said:
        raise ValueError(f"a conversational completion without an assistant message: {completion!r:.200}")
    content = said[-1].get("content") or ""
    if isinstance(content, list):  # content blocks (multimodal chat templates)
        content = "".join(block.get("text", "") for block in content if block.get("type") == "text")
    return content


class ConstraintReward:
    """A TRL reward function over the kit's constraints. A class, not a closure, so that TRL's async trainer can
    pickle it to its rollout process (the judge must then be picklable too)."""

    def __init__(self, reward="mixed", combine="mean", judge=None, name=None):
        check_options(reward, combine, judge, "reward_function")
        self.reward, self.combine, self.judge = reward, combine, judge
        self.__name__ = name or f"minirlvr_{reward}_{combine}"  # TRL logs each reward as rewards/<__name__>

    def __call__(self, prompts, completions, **kwargs):
        N = len(completions)
        if not any(c in kwargs for c in READS[self.reward]):
            raise DataError(f"{self.__name__}: no {' or '.join(map(repr, READS[self.reward]))} column among the "
                            f"dataset's columns {sorted(kwargs)}; build rows with "
                            f"minirlvr.integrations.trl.dataset_rows(records)")
        columns = {c: kwargs[c] for c in (HARD, KWARGS, SOFT, "key") if c in kwargs}
        for c, values in columns.items():
            if len(values) != N:
                raise DataError(f"{self.__name__}: column {c!r} has {len(values)} values for {N} completions")
        records, labels = [], []
        for n in range(N):
            key = columns["key"][n] if "key" in columns else None
            prompt = {"prompt": prompts[n]} if isinstance(prompts[n], str) else {"messages": list(prompts[n])}
            records.append({"key": key, **prompt, **constraints({c: v[n] for c, v in columns.items()})})
            labels.append(f"row {n} of the batch" + (f" (key {key!r})" if key is not None else ""))
        return score(records, [completion_text(c) for c in completions], labels, self.reward, self.combine,
                     self.judge)


def reward_function(reward="mixed", combine="mean", judge=None, name=None):
    """A TRL reward function f(prompts, completions, **kwargs) -> list[float] with the kit's reward options:
    reward "hard" (verifiers only; soft constraints ignored), "soft" (the judge only) or "mixed" (every constraint
    a row has; rows without soft constraints need no judge), combined per row by "mean" or "product" (any failure
    gives 0). `judge` is any object with the kit's judge interface (minirlvr.reward.judge). A row with soft constraints
    and no judge, an unknown instruction id or bad kwargs raise, naming the row. `name` is what TRL logs
    (default minirlvr_<reward>_<combine>)."""
    return ConstraintReward(reward, combine, judge, name)


def dataset_rows(records):
    """Rows for `datasets.Dataset.from_list`, from the kit's records (a JSONL path or a list of dicts): TRL's
    conversational `prompt` (common.chat_messages), `key`, and the constraint columns."""
    return [{"prompt": chat_messages(rec), "key": rec.get("key", i), **constraints(rec)}
            for i, rec in enumerate(read(records))]


def to_dataset(records):
    """dataset_rows(records) as a `datasets.Dataset` (imported here, so the module works without it)."""
    from datasets import Dataset

    return Dataset.from_list(dataset_rows(records))
