"""The kit's rewards as verl's custom reward function, and the kit's records as verl's parquet rows.

    import pandas as pd
    from minirlvr.integrations.verl import parquet_rows
    pd.DataFrame(parquet_rows("data/mixed.jsonl", split="train")).to_parquet("train.parquet")  # pandas: yours

    python -m verl.trainer.main_ppo data.train_files=train.parquet ... \
        reward.custom_reward_function.path=/path/to/minirlvr/integrations/verl.py \
        reward.custom_reward_function.name=compute_score
    (verl <= 0.7.0: custom_reward_function.path / .name at the top level. verl 0.9 ignores the top-level keys.)

A row's reward_model.ground_truth is a JSON string of the record's constraints,
    {"key": 17, "instruction_id_list": [...], "kwargs": [{...}, ...], "soft_constraints": [...]},
a string because parquet would store the kwargs dicts as one struct padded with every other instruction's fields
(a dict of that shape is accepted too). extra_info holds {"split", "index", "prompt"}; the prompt is read only to
show a judge the request.

compute_score returns a float. verl also accepts a dict with "score" and more keys, but it gathers each key into
one list per batch, so per-constraint keys, which differ between records, would not line up.
Options arrive as verl's reward_kwargs, e.g. `+reward.custom_reward_function.reward_kwargs.combine=product`.
A judge cannot come from the command line: write a small file with
`compute_score = functools.partial(minirlvr.integrations.verl.compute_score, judge=MyJudge(...))` and point
custom_reward_function.path at it. compute_score_batch is for verl's batch reward manager, which only verl <= 0.7.0
can call (`reward_model.reward_manager=batch`; in 0.7.0 also `reward_model.use_reward_loop=False`): the judge then
sees a whole batch per call. From 0.7.1 verl scores one row per call (its naive reward manager) and has no "batch".
Checked by scripts/verl_reward_check.py with verl 0.9.1 (compute_score) and 0.7.0 / 0.6.1 (both).
This file imports nothing of verl's; nothing outside minirlvr.integrations imports it.
"""

import json

from minirlvr.data import DataError, prompt_text
from minirlvr.integrations.common import HARD, SOFT, chat_messages, check_options, constraints, read, score


def ground_truth(record):
    """The JSON string a row's reward_model.ground_truth holds: the record's key and constraints."""
    return json.dumps({"key": record.get("key"), **constraints(record)}, ensure_ascii=False)


def parquet_rows(records, split="train", data_source="minirlvr", ability="instruction_following"):
    """verl's row dicts (data_source, prompt, ability, reward_model, extra_info) from the kit's records (a JSONL
    path or a list of dicts). `prompt` is the chat verl's dataset templates (common.chat_messages). Writing the
    parquet file is the caller's: pandas.DataFrame(rows).to_parquet(path)."""
    return [{"data_source": data_source,
             "prompt": chat_messages(rec),
             "ability": ability,
             "reward_model": {"style": "rule", "ground_truth": ground_truth(rec)},
             "extra_info": {"split": split, "index": i, "prompt": prompt_text(rec)}}
            for i, rec in enumerate(read(records))]


def _record(truth, extra_info):
    """(record, label) from a row's ground_truth and extra_info."""
    extra_info = extra_info or {}
    label = f"row {extra_info.get('index', '?')}"
    if isinstance(truth, str):
        try:
            truth = json.loads(truth)
        except json.JSONDecodeError as e:
            raise DataError(f"{label}: ground_truth is not JSON ({e.msg}); write rows with parquet_rows") from None
    if not isinstance(truth, dict):
        raise DataError(f"{label}: ground_truth must be a JSON object of the record's constraints, "
                        f"got {type(truth).__name__}")
    if not any(k in truth for k in (HARD, SOFT)):
        raise DataError(f"{label}: ground_truth has neither {HARD!r} nor {SOFT!r}; write rows with parquet_rows")
    key = truth.get("key")
    label += f" (key {key!r})" if key is not None else ""
    return {"key": key, "prompt": extra_info.get("prompt") or "", **constraints(truth)}, label


def compute_score(data_source, solution_str, ground_truth, extra_info=None, reward="mixed", combine="mean",
                  judge=None, **kwargs):
    """verl's custom reward function: the kit's reward of `solution_str` on the record in `ground_truth`, a float.
    reward / combine / judge as minirlvr.integrations.trl.reward_function; verl's other keyword arguments are
    ignored. A record with soft constraints and no judge, an unknown id or bad kwargs raise, naming the row."""
    check_options(reward, combine, judge, "compute_score")
    record, label = _record(ground_truth, extra_info)
    return score([record], [solution_str], [label], reward, combine, judge)[0]


def compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos=None, reward="mixed",
                        combine="mean", judge=None, **kwargs):
    """compute_score for verl's batch reward manager: lists in, a list of floats out, one judge call per batch."""
    check_options(reward, combine, judge, "compute_score_batch")
    # verl passes numpy object arrays, whose truth value is an error: test for None, not for emptiness
    extra_infos = [None] * len(ground_truths) if extra_infos is None else list(extra_infos)
    pairs = [_record(t, e) for t, e in zip(ground_truths, extra_infos)]
    return score([r for r, _ in pairs], list(solution_strs), [label for _, label in pairs], reward, combine, judge)
