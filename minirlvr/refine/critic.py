"""The LLM critic of the paper's refinement, for real models: before any model call the verifiers' conflict table
(refine.hard_conflict) drops a prompt with two hard ids that exclude each other; then a chat model reads each
remaining prompt and its constraints and says KEEP or DROP (clear, mutually compatible and feasible for the
task?) with a one-sentence reason.

    ask = model_ask(model, tokenizer, adapter_off=True)   # the policy's own base, LoRA off (or any chat model)
    kept, dropped = critic(records, ask)                  # like the miniature's world_critic: kept records, {reason: count}
    decisions = review(records, ask)                      # one Decision per record, with its reason

The model answers greedily in at most `max_new_tokens` tokens to CRITIC_PROMPT. `parse` reads the verdict
from "VERDICT: KEEP|DROP" (any case, markdown stars allowed), else from a lone "keep" or "drop" anywhere in
the answer; an answer with neither, or with both and no VERDICT line, is unparsed. Unparsed answers are KEPT
by default and counted ("unparsed" decisions): a critic that gives no verdict says nothing about the prompt,
dropping would let a weak critic model shrink the data unseen, and the learnability pilot still runs after
it. on_unparsed="drop" drops them instead.

The miniature's critic (miniature/parts.py world_critic) is the world's writer; this one needs no world. It does not load models
(refine_cli.py does) and does not sample policies.
"""

import re
from dataclasses import dataclass

from minirlvr import verifiers
from minirlvr.engine.chat import complete
from minirlvr.data import prompt_text
from minirlvr.refine.filters import hard_conflict

CRITIC_PROMPT = """You review training prompts for an assistant that must follow instructions exactly.

The prompt:
<<<
{prompt}
>>>

The constraints an answer to it will be checked against:
{constraints}

Could one answer satisfy all of these constraints at once, is each constraint clear, and do they make sense
for this task? Reply with exactly two lines:
VERDICT: KEEP or DROP
REASON: one short sentence"""

_VERDICT = re.compile(r"verdict\W{0,6}(keep|drop)\b", re.IGNORECASE)
_WORD = re.compile(r"\b(keep|drop)\b", re.IGNORECASE)
_REASON = re.compile(r"reason\W{0,6}(.+)", re.IGNORECASE)


@dataclass
class Decision:
    keep: bool
    kind: str  # "kept", "conflict" (verifier table), "infeasible" (the critic said DROP), "unparsed"
    reason: str
    answer: str = None  # the critic's raw answer (None for the conflict table)


def constraint_lines(record):
    """The record's constraints, numbered, each marked as checked by code or judged."""
    items = [f"[checked by code] {verifiers.describe(i, kw)}"
             for i, kw in zip(record.get("instruction_id_list", []), record.get("kwargs", []))]
    items += [f"[checked by code] {r['name']}" for r in record.get("rule_checks", [])]
    items += [f"[judged] {s}" for s in record.get("soft_constraints", [])]
    return "\n".join(f"{k}. {text}" for k, text in enumerate(items, 1)) or "(none)"


def critic_prompt(record):
    return CRITIC_PROMPT.format(prompt=prompt_text(record), constraints=constraint_lines(record))


def parse(answer):
    """(verdict "keep" / "drop" / None, reason) of a critic answer."""
    m = _VERDICT.search(answer)
    if m:
        verdict = m.group(1).lower()
    else:
        found = {w.lower() for w in _WORD.findall(answer)}
        verdict = found.pop() if len(found) == 1 else None
    r = _REASON.search(answer)
    reason = (r.group(1) if r else " ".join(answer.split())).strip().strip("*").strip()
    return verdict, reason[:300]


def model_ask(model, tokenizer, adapter_off=False, max_new_tokens=64, batch_rows=64, progress=False):
    """ask(prompts) -> answers: greedy, short, through the kit's sampler (chat.complete)."""
    def ask(prompts):
        return complete(model, tokenizer, prompts, samples=1, max_new_tokens=max_new_tokens, temperature=0.0,
                        batch_rows=batch_rows, adapter_off=adapter_off, progress=progress, desc="critic").texts
    return ask


def review(records, ask, on_unparsed="keep"):
    """A Decision per record, in order; the model is asked only about prompts the conflict table lets through."""
    if on_unparsed not in ("keep", "drop"):
        raise ValueError(f"on_unparsed must be 'keep' or 'drop', got {on_unparsed!r}")
    decisions = [None] * len(records)
    todo = []
    for k, rec in enumerate(records):
        pair = hard_conflict(rec)
        if pair:
            decisions[k] = Decision(False, "conflict", f"hard constraints {pair[0]} and {pair[1]} conflict")
        else:
            todo.append(k)
    answers = ask([critic_prompt(records[k]) for k in todo]) if todo else []
    if len(answers) != len(todo):
        raise ValueError(f"the critic returned {len(answers)} answers for {len(todo)} prompts")
    for k, answer in zip(todo, answers):
        verdict, reason = parse(answer)
        if verdict is None:
            decisions[k] = Decision(on_unparsed == "keep", "unparsed", f"no verdict in: {answer[:120]!r}", answer)
        else:
            decisions[k] = Decision(verdict == "keep", "kept" if verdict == "keep" else "infeasible", reason, answer)
    return decisions


def critic(records, ask, on_unparsed="keep"):
    """(kept records, {reason: count of dropped records}), the interface of the miniature's world_critic."""
    decisions = review(records, ask, on_unparsed)
    dropped = {"conflict": 0, "infeasible": 0}
    for d in decisions:
        if not d.keep:
            dropped[d.kind] = dropped.get(d.kind, 0) + 1
    return [r for r, d in zip(records, decisions) if d.keep], dropped
