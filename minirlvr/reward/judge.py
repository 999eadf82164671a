"""The judge interface: one shape for every judge of soft constraints, so rewards, refinement, the audit and the
pipeline take any of them (the miniature's learned classifier, minirlvr/miniature/judge.py; the LLM judge,
minirlvr/llm_judge.py).

    verdicts = judge.check([(record, response, ["Use a warm tone.", "Be brief."]), ...])
    verdicts.ok[i][j]          # constraint j of item i judged satisfied
    judge_soft(judge, records, responses)                   # each record's own soft constraints

An item is (record or None, response, constraint texts). It carries a list because an LLM judge in batched mode
needs all of an item's constraints in one call. This file holds no judge; it only defines what they answer.
"""

from dataclasses import dataclass, field


@dataclass
class Verdicts:
    """A judge's answers about a list of items (record, response, constraint texts)."""

    ok: list  # ok[i][j]: constraint j of item i judged satisfied; an unreadable answer is False, never a pass
    parsed: list  # parsed[i][j]: False where the judge's answer could not be read
    calls: int = 0  # model calls made (after identical questions were merged)
    unparseable: int = 0  # distinct questions whose answer could not be read
    answers: list = field(default_factory=list)  # answers[i][j]: the judge's raw text (LLM judges; else empty)


def judge_soft(judge, records, responses):
    """Verdicts on each record's own soft constraints (`soft_constraints`, possibly none) for its response."""
    return judge.check([(rec, text, rec.get("soft_constraints", [])) for rec, text in zip(records, responses)])


def precision_recall(judged_yes, true_yes):
    """Precision and recall of the judge on VIOLATIONS (a violation is the positive class)."""
    flagged = [not j for j in judged_yes]
    viol = [not t for t in true_yes]
    tp = sum(f and v for f, v in zip(flagged, viol))
    precision = tp / sum(flagged) if sum(flagged) else float("nan")
    recall = tp / sum(viol) if sum(viol) else float("nan")
    return precision, recall
