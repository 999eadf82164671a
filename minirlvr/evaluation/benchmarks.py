"""The benchmark interface of `eval --bench multi-if|cfbench|followbench`: one small record per benchmark saying
how to read its file, what the model is asked (one or more user turns), and how its responses are scored.

    bench = BENCHMARKS["cfbench"]
    items = bench.read(path)                           # the benchmark's own items (errors name file, line, field)
    chats = bench.conversations(items)                 # [Conversation]: the user turns each item asks
    report = bench.score(items, responses, judging)    # responses[i]: the model's response to each turn of chats[i]

Generation (turn by turn, the model's own earlier responses in the chat, resumable) is generate.py's; the scoring
rules are each benchmark's module (multiif.py, cfbench.py, followbench.py). A judged benchmark gets a `Judging`:
the judge as a callable `ask(prompt) -> answer` (the benchmark's official batched prompt) and as the kit's judge
interface (`check`, one question per constraint), and the mode to use. IFEval and IFBench keep their own path in
generate.py (several samples per prompt, `verify`'s metrics).
"""

import math
import os
from dataclasses import dataclass, field
from typing import Callable

# What `eval --bench ifeval|ifbench` sets (generate.py's path; here so that eval's --help needs no model code). Both
# benchmarks are scored greedily (IFBench's README: "a temperature of 0"); 1280 new tokens is lm-evaluation-harness's
# IFEval setting (IFBench names no number). The headline metric is the one the benchmark's authors report:
# prompt-level loose for IFBench (its README), and for IFEval in IFBench's and Tulu 3's tables.
BENCHES = {
    "ifeval": {"max_new_tokens": 1280, "headline": "prompt_level_loose"},
    "ifbench": {"max_new_tokens": 1280, "headline": "prompt_level_loose"},
}


@dataclass(frozen=True)
class Conversation:
    key: str
    turns: tuple  # the user messages, in order; turn t is asked after the model's own responses to turns < t


@dataclass
class Judging:
    """How a judged benchmark is judged: `mode` "official" asks `ask(prompt) -> str` with the benchmark's own
    prompt; "pointwise" asks `judge.check(...)` one constraint at a time (minirlvr/reward/judge.py)."""
    mode: str
    ask: Callable = None
    judge: object = None
    name: str = ""  # the judge model, for the report: the paper's numbers come from GPT-4-class judges


@dataclass(frozen=True)
class Benchmark:
    name: str
    metric: str  # what the headline number is, in words (the report labels its column with it)
    judged: bool
    max_new_tokens: int
    read: Callable
    conversations: Callable
    score: Callable  # (items, responses, judging) -> report dict with "metrics", "headline", "table"
    modes: tuple = ()  # judged: the judging modes it has, the first the default
    notes: list = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- Multi-IF


def _multiif_read(path):
    from minirlvr.evaluation import multiif

    return multiif.read_multiif(path)  # its MultiIFError is a DataError naming file, line and field


def _multiif_conversations(items):
    return [Conversation(str(c.key), tuple(t.prompt for t in c.turns)) for c in items]


def _multiif_score(items, responses, judging=None):
    from minirlvr.evaluation import multiif

    scores = [multiif.score_conversation(c, r) for c, r in zip(items, responses)]
    m = multiif.metrics(items, scores)
    avg = m["average"][multiif.ALL]
    headline = {"overall (turn average)": avg["overall"]}
    per_turn = {f"turn{t}/overall": m["turns"][t][multiif.ALL]["overall"] for t in sorted(m["turns"])}
    return {"metrics": {**{f"average/{k}": avg[k] for k in multiif.METRICS + ("overall",)}, **per_turn},
            "headline": headline, "table": multiif.format_table(m), "details": m}


# ---------------------------------------------------------------------------------------------- CFBench


def _cfbench_read(path):
    from minirlvr.evaluation import cfbench

    return cfbench.read_items(path)


def _cfbench_conversations(items):
    return [Conversation(str(it.idx), (it.prompt,)) for it in items]


def _cfbench_score(items, responses, judging):
    from minirlvr.evaluation import cfbench

    texts = [r[0] for r in responses]
    if judging.mode == "official":
        # greedy judge: a retry gives the same answer, so one round; the fallback parser as released, and corrected
        report = cfbench.score_official(items, texts, judging.ask, rounds=1)
        corrected = cfbench.score_official(items, texts, judging.ask, rounds=1, corrected=True)
        extra = {"corrected": corrected.table, "fallback_items": report.fallback}
        lines = [f"fallback parser used on {report.fallback} of {len(items)} items (the released parser drops every "
                 f"0 there); with the fallback corrected: " + _cells(corrected.table)]
    else:
        report = cfbench.score_pointwise(items, texts, judging.judge)
        extra = {"unreadable_criteria": report.unparseable}
        lines = [f"{report.unparseable} criteria had an unreadable answer (scored as not satisfied)"]
    table = report.table
    text = "\n".join([f"CFBench ({report.label}), judge {judging.name}: " + _cells(table), *lines])
    return {"metrics": dict(table), "headline": {"PSR": table["PSR"]}, "table": text, "details": extra,
            "scores": report.scores, "answers": report.answers}


def _cells(table):
    return ", ".join(f"{k} {v:.2f}" for k, v in table.items() if not (isinstance(v, float) and math.isnan(v)))


# ---------------------------------------------------------------------------------------------- FollowBench


def _followbench_read(path):
    from minirlvr.evaluation import followbench

    if os.path.isdir(path):
        return followbench.read_folder(path)
    return followbench.read_category(path)


def _followbench_conversations(items):
    # level 0 is each instruction without added constraints: the judge prompt shows it, nothing scores it
    return [Conversation(f"{it.category}/{it.example_id}/{it.level}", (it.instruction,) if it.level > 0 else ())
            for it in items]


def _followbench_score(items, responses, judging):
    from minirlvr.evaluation import followbench

    texts = [r[0] if r else None for r in responses]
    if judging.mode == "official":
        verdicts = followbench.score_official(items, texts, judging.ask)
    else:
        verdicts = followbench.score_per_constraint(items, texts, judging.judge)
    t = followbench.tables(verdicts)
    hsr = t["HSR"]["avg"]
    metrics = {**{f"HSR/level{lv}": v for lv, v in hsr.items()},
               **{f"SSR/level{lv}": v for lv, v in t["SSR"]["avg"].items()}, "CSL": t["CSL"]["avg"]}
    unread = sum(sum(row.values()) for row in t["unparseable"].values())
    text = (f"FollowBench ({judging.mode}), judge {judging.name}; {unread} judge answers unreadable (scored 0, "
            f"not -1 as the official code adds)\n\n" + followbench.format_tables(t))
    scored = [v for v in hsr.values() if v == v]  # levels with no item (a partial file, --limit) are NaN
    headline = sum(scored) / len(scored) / 100 if scored else math.nan
    return {"metrics": metrics, "headline": {"HSR (mean of the levels scored, 1-5)": headline},
            "table": text, "details": t}


BENCHMARKS = {
    "multi-if": Benchmark("multi-if", "overall: mean of prompt/instruction-level strict/loose, turns 1-3 averaged",
                          False, 1280, _multiif_read, _multiif_conversations, _multiif_score),
    "cfbench": Benchmark("cfbench", "PSR: prompts whose every primary criterion is met (CSR, ISR beside it)", True,
                         2048, _cfbench_read, _cfbench_conversations, _cfbench_score,
                         modes=("official", "pointwise")),
    "followbench": Benchmark("followbench", "HSR: responses meeting every constraint, mean of levels 1-5 "
                                            "(SSR, CSL beside it)", True, 2048, _followbench_read,
                             _followbench_conversations, _followbench_score, modes=("official", "pointwise")),
}
