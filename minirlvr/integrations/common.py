"""What the TRL and verl adapters share: the kit's record rebuilt from another trainer's row, checked with the row
named, and scored by the kit's own reward (reward.constraint_reward), so the numbers are the kit's.

The constraint fields keep the record format's names (DESIGN.md): `instruction_id_list` and `kwargs` (hard
constraints, one kwargs dict per id, checked strictly like the kit's training reward) and `soft_constraints`
(asked of a judge). As in the record format, a missing field means "none".
This file does not know how TRL or verl call a reward (trl.py, verl.py).
"""

import os

from minirlvr import verifiers
from minirlvr.engine.chat import record_messages as chat_messages  # the chat a trainer templates
from minirlvr.data import DataError, read_records, validate_record
from minirlvr.reward.constraint import constraint_reward

HARD, KWARGS, SOFT = "instruction_id_list", "kwargs", "soft_constraints"
READS = {"hard": (HARD,), "soft": (SOFT,), "mixed": (HARD, SOFT)}  # the fields each kind of reward scores


def check_options(reward, combine, judge, who):
    """The kit's reward options (config's reward / reward_combine); `who` names the caller in the message."""
    if reward not in READS or combine not in ("mean", "product"):
        raise ValueError(f"{who}: reward must be hard|soft|mixed and combine mean|product, got {reward!r}, {combine!r}")
    if reward == "soft" and judge is None:
        raise ValueError(f"{who}: reward='soft' needs judge= (any object with the kit's judge interface)")


def read(records):
    """The kit's records, validated: a JSONL path (e.g. from `python run.py data build`) or a list of dicts."""
    if isinstance(records, (str, os.PathLike)):
        return read_records(records)
    return [validate_record(r, f"record {i}") for i, r in enumerate(records)]


def constraints(row):
    """A row's constraint fields as plain lists, with the record format's defaults (no field: none)."""
    ids = list(row.get(HARD) or [])
    return {HARD: ids, KWARGS: list(row.get(KWARGS) or [{} for _ in ids]), SOFT: list(row.get(SOFT) or [])}


def check_row(record, label, reward, judge):
    """Raise, naming the row, what would otherwise fail deep in the verifiers without it, or go unjudged."""
    if reward != "soft":
        ids, kwargs = record[HARD], record[KWARGS]
        if len(kwargs) != len(ids):
            raise DataError(f"{label}: {len(ids)} ids in {HARD!r} but {len(kwargs)} dicts in {KWARGS!r}")
        for iid, kw in zip(ids, kwargs):
            try:
                verifiers.validate_kwargs(iid, kw)
            except verifiers.VerifierError as e:
                raise DataError(f"{label}, column {HARD!r}/{KWARGS!r}: {e}") from None
    if reward != "hard" and judge is None and record[SOFT]:
        raise ValueError(f"{label} has {len(record[SOFT])} soft constraint(s) in column {SOFT!r} but no judge was "
                         f"given: pass judge= (any object with the kit's judge interface), or reward='hard' to score "
                         f"only the hard constraints")


def score(records, texts, labels, reward, combine, judge):
    """The kit's reward of each text on its record (records carry constraints()' fields), every row checked first."""
    for rec, label in zip(records, labels):
        check_row(rec, label, reward, judge)
    # Without a judge no row has soft constraints (checked above): "mixed" is then the hard reward.
    kind = reward if judge is not None else "hard"
    rewards, _ = constraint_reward(kind, combine, judge)(records, texts)
    return [float(r) for r in rewards]
