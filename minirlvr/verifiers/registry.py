"""The registry of hard constraints and the public API over it: check, score, describe, sample_kwargs.

A verifier is four plain functions (check, describe, sample, plus its declared conflicts) and a schema
of its kwargs. kwargs use the IFEval names; every call validates them against the schema, so a typo
or a wrong type fails loudly with the instruction id and the field, instead of silently scoring 0.
Strict and loose scoring follow IFEval's evaluation_lib (Zhou et al. 2023): strict checks the response
as is; loose passes if any of 8 variants passes (the response, without its first line, without its
last line, without both, and each of those with every '*' removed). Empty or whitespace-only text
never passes. This file does not know what any instruction means; ifeval.py, extra.py, ifbench.py and
ifbench_format.py do. IFBench (Pyatkin et al. 2025) scores strict and loose the same way.
"""

import random
from dataclasses import dataclass
from typing import Callable

RELATIONS = ("less than", "at least")
ALL = "*"  # in a conflicts declaration: every registered id


class VerifierError(ValueError):
    """An unknown instruction id, or a missing / ill-typed kwarg (the message names id and field)."""


@dataclass(frozen=True)
class Verifier:
    id: str
    fields: dict  # kwarg name -> kind, one of FIELD_KINDS
    check: Callable  # (response: str, kwargs: dict, prompt: str | None) -> bool
    describe: Callable  # (kwargs: dict) -> str
    sample: Callable  # (rng: random.Random, prompt: str | None) -> dict
    conflicts: frozenset  # ids that must not share a prompt with this one (ALL: every id)
    except_: frozenset = frozenset()  # with conflicts == {ALL}: the ids that may share a prompt
    source: str = ""  # the set it comes from: "ifeval", "extra" or "ifbench"


_REGISTRY = {}


def register(verifier):
    if verifier.id in _REGISTRY:
        raise ValueError(f"instruction id {verifier.id!r} registered twice")
    if verifier.id.count(":") != 1:
        raise ValueError(f"instruction id {verifier.id!r} is not of the form group:name")
    _REGISTRY[verifier.id] = verifier
    return verifier


def reg(iid, fields, check, describe, sample, conflicts=(), except_=(), source=""):
    """Register a verifier from its parts (the form ifeval.py, extra.py and ifbench*.py use)."""
    return register(Verifier(iid, dict(fields), check, describe, sample, frozenset(conflicts), frozenset(except_),
                             source))


def _get(instruction_id):
    try:
        return _REGISTRY[instruction_id]
    except (KeyError, TypeError):
        raise VerifierError(f"unknown instruction id {instruction_id!r}") from None


# --- kwargs validation -----------------------------------------------------------------------------


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_field(iid, name, kind, v):
    bad = None
    if kind in ("count", "positive", "percent"):  # integers (JSON may give 3.0)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        low, high = {"count": (0, None), "positive": (1, None), "percent": (0, 100)}[kind]
        if not _is_int(v) or v < low or (high is not None and v > high):
            bad = {"count": "a non-negative integer", "positive": "an integer >= 1",
                   "percent": "an integer from 0 to 100"}[kind]
    elif kind == "relation":
        if v not in RELATIONS:
            bad = f"one of {RELATIONS}"
    elif kind == "text":
        if not isinstance(v, str) or not v.strip():
            bad = "a non-empty string"
    elif kind == "char":
        if not isinstance(v, str) or len(v) != 1:
            bad = "a single character"
    elif kind == "texts":
        if isinstance(v, str) or not isinstance(v, (list, tuple)) or not v \
                or not all(isinstance(x, str) and x for x in v):
            bad = "a non-empty list of non-empty strings"
        else:
            v = list(v)
    else:
        raise AssertionError(kind)
    if bad:
        raise VerifierError(f"{iid}: kwarg {name!r} must be {bad}, got {v!r}")
    return v


def validate_kwargs(instruction_id, kwargs):
    """The kwargs of one instruction, checked and cleaned: None-valued keys (IFEval releases pad every
    dict with the other instructions' names set to None) are dropped; anything else unknown is an error."""
    v = _get(instruction_id)
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise VerifierError(f"{instruction_id}: kwargs must be a dict, got {type(kwargs).__name__}")
    given = {k: x for k, x in kwargs.items() if x is not None}
    for k in given:
        if k not in v.fields:
            raise VerifierError(f"{instruction_id}: unexpected kwarg {k!r} (takes {sorted(v.fields) or 'none'})")
    out = {}
    for name, kind in v.fields.items():
        if name not in given:
            raise VerifierError(f"{instruction_id}: missing kwarg {name!r}")
        out[name] = _check_field(instruction_id, name, kind, given[name])
    return out


# --- public API ------------------------------------------------------------------------------------


def ids(source=None):
    """Registered instruction ids, "group:name", in registration order (IFEval's 25 first, then the extras,
    then IFBench's 58); `source` ("ifeval", "extra", "ifbench") keeps one set."""
    if source is not None and source not in {v.source for v in _REGISTRY.values()}:
        raise VerifierError(f"unknown verifier source {source!r}")
    return [i for i, v in _REGISTRY.items() if source is None or v.source == source]


def loose_variants(response):
    """IFEval's 8 loose variants of a response, in evaluation_lib's order."""
    lines = response.split("\n")
    no_first = "\n".join(lines[1:]).strip()
    no_last = "\n".join(lines[:-1]).strip()
    no_both = "\n".join(lines[1:-1]).strip()
    variants = [response, response.replace("*", ""), no_first, no_last, no_both]
    return variants + [no_first.replace("*", ""), no_last.replace("*", ""), no_both.replace("*", "")]


def _passes(v, kw, texts, prompt):
    return any(t.strip() and v.check(t, kw, prompt) for t in dict.fromkeys(texts))


def check(instruction_id, response, kwargs, prompt=None, loose=False):
    """Does `response` follow the instruction? Strict by default; loose as IFEval defines it."""
    v = _get(instruction_id)
    kw = validate_kwargs(instruction_id, kwargs)
    if not isinstance(response, str):
        raise VerifierError(f"{instruction_id}: response must be a string, got {type(response).__name__}")
    return _passes(v, kw, loose_variants(response) if loose else [response], prompt)


def score(record, response):
    """Per-instruction strict and loose verdicts of `response` on an IFEval-format record, and the
    prompt-level verdicts (all instructions followed)."""
    from minirlvr.data import prompt_text

    iids = record.get("instruction_id_list", [])
    kwargs = record.get("kwargs") or [{} for _ in iids]
    if len(kwargs) != len(iids):
        raise VerifierError(f"record has {len(iids)} instruction ids but {len(kwargs)} kwargs")
    prompt = prompt_text(record) if ("prompt" in record or "messages" in record) else None
    variants = loose_variants(response)
    strict, loose = [], []
    for iid, kw in zip(iids, kwargs):
        v, kw = _get(iid), validate_kwargs(iid, kw)
        s = _passes(v, kw, [response], prompt)
        strict.append(s)
        loose.append(s or _passes(v, kw, variants[1:], prompt))
    return {"strict": strict, "loose": loose, "prompt_strict": all(strict), "prompt_loose": all(loose)}


def describe(instruction_id, kwargs, prompt=None):
    """The instruction in English, rendered deterministically from its kwargs."""
    v = _get(instruction_id)
    return v.describe(validate_kwargs(instruction_id, kwargs))


def sample_kwargs(instruction_id, rng, prompt=None):
    """Reasonable kwargs for building training data, drawn from `rng` (a random.Random) only."""
    v = _get(instruction_id)
    if not isinstance(rng, random.Random):
        raise VerifierError(f"{instruction_id}: rng must be a random.Random, got {type(rng).__name__}")
    return validate_kwargs(instruction_id, v.sample(rng, prompt))


def conflicts(instruction_id):
    """Ids that must not appear in the same prompt as `instruction_id` (symmetric, includes itself)."""
    v = _get(instruction_id)
    out = {instruction_id}
    for other in _REGISTRY.values():
        if _declares(v, other.id) or _declares(other, instruction_id):
            out.add(other.id)
    return frozenset(out)


def _declares(v, other_id):
    if ALL in v.conflicts:
        return other_id not in v.except_
    return other_id in v.conflicts
