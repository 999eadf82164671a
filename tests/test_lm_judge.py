"""The miniature's LM judge (miniature/lm_judge.py): its questions are the LLM judge's templates answered by the
world's truth in the form the kit's parser reads; the miniature's reward pays a judge's verdicts and logs its
canaries; a judge's scores count unreadable answers as the reward does and show the readable-only recall."""

import math
import random
import re

import pytest

from minirlvr.miniature import lm_judge, parts, world
from minirlvr.reward.judge import Verdicts
from minirlvr.reward.llm_judge import BATCHED_TEMPLATE, NO_PROMPT, POINTWISE_TEMPLATE, parse_answer, parse_numbered


def asked(question):
    """The constraint texts a filled template asks about, in order."""
    if "[Constraints]\n" in question:
        block = question.split("[Constraints]\n")[1].split("\n\nFor each constraint")[0]
        return [re.sub(r"^\d+\. ", "", item) for item in re.split(r"\n(?=\d+\. )", block)]  # items may span lines
    return [question.split("[Constraint]\n")[1].split("\n\nDoes the response")[0]]


def test_every_question_is_answered_by_the_world_in_the_parsers_format():
    cfg = lm_judge.LMJudgeConfig()
    rng = random.Random(0)
    kinds = {"pointwise": 0, "batched": 0, "no prompt": 0, "hard": 0, "soft": 0}
    for rec in world.sample_records("sft", 300, seed=7):
        if not world.constraints_of(rec):
            continue
        response = world.write_response(rec, rng)
        truth = {text: (ok, kind, ev) for text, ok, kind, ev in lm_judge.constraints_with_truth(rec, response)}
        q, answer = lm_judge.question(rec, response, rng, cfg)
        texts = asked(q)
        assert f"[Response]\n{response}\n" in q
        if "[Constraints]" in q:
            kinds["batched"] += 1
            assert q.startswith(BATCHED_TEMPLATE.split("{prompt}")[0])
            assert parse_numbered(answer, len(texts)) == [truth[t][0] for t in texts], (q, answer)
        else:
            kinds["pointwise"] += 1
            assert q.startswith(POINTWISE_TEMPLATE.split("{prompt}")[0])
            assert parse_answer(answer) is truth[texts[0]][0], (q, answer)
        kinds["no prompt"] += f"[Request]\n{NO_PROMPT}\n" in q
        for t in texts:
            kinds[truth[t][1]] += 1
            # a soft constraint's answer gives the rule's evidence before its verdict; a hard one's is the verdict
            assert (truth[t][2] is not None and truth[t][2] in answer) == (truth[t][1] == "soft"), (t, answer)
    # both templates, both kinds of constraint, and questions without the request all occur
    assert all(n > 10 for n in kinds.values()), kinds


def test_the_soft_evidence_decides_the_verdict_by_the_rule():
    # every soft spec on grammar responses: "none" on the wanted side (or a word on the other) is a violation
    rng = random.Random(2)
    seen = set()
    for rec in world.sample_records("mixed", 200, seed=5):
        response = world.write_response(rec, rng)
        for spec in world.soft_specs_of(rec):
            ev = world.soft_evidence(spec, response)
            lists = [part.split(": ")[1] for part in ev.split("; ")]
            follows = lists[0] == "none" if spec[0] == "audience" else lists[0] != "none" and lists[1] == "none"
            assert follows == world.soft_truth(spec, response), (spec, response, ev)
            seen.add((spec[0], follows))
            for word in ", ".join(lists).split(", "):
                assert word == "none" or word in world.words_of(response)
    assert len(seen) == 6  # each kind both satisfied and violated
    assert world.soft_evidence(("tone", "positive"), "Good, good and lovely, great, kind but awful.") == \
        "positive words: good, lovely, great; negative words: awful"  # in order, once each, at most 3


def test_the_corpus_has_exactly_steps_x_batch_size_questions_and_is_reproducible():
    cfg = lm_judge.LMJudgeConfig(steps=3, batch_size=5)
    records, answers = lm_judge.corpus(cfg)
    assert len(records) == len(answers) == 15
    assert lm_judge.corpus(cfg) == (records, answers)
    assert lm_judge.corpus(lm_judge.LMJudgeConfig(steps=3, batch_size=5, seed=1)) != (records, answers)


class YesJudge:
    """Says every constraint is satisfied, and counts what it was asked."""

    def __init__(self):
        self.asked = []

    def check(self, items):
        self.asked.append(items)
        return Verdicts(ok=[[True] * len(cs) for _, _, cs in items], parsed=[[True] * len(cs) for _, _, cs in items],
                        calls=sum(len(cs) for _, _, cs in items))


def test_the_miniatures_reward_pays_the_judge_logs_the_truth_and_asks_canaries():
    recs = world.sample_records("mixed", 6, seed=3)
    rng = random.Random(1)
    texts = [world.write_response(r, rng) for r in recs]
    judge = YesJudge()
    reward_fn = parts.make_reward(judge, canaries=3)
    rewards, p = reward_fn(recs, texts)
    for n, (rec, text) in enumerate(zip(recs, texts)):
        t = world.truth(rec, text)
        values = [float(x) for x in t["hard"]] + [1.0] * len(t["soft"])  # the judge passes every soft constraint
        assert rewards[n] == pytest.approx(sum(values) / len(values))
        assert p["soft_judged"][n] == 1.0
        assert p["soft_true"][n] == pytest.approx(sum(t["soft"]) / len(t["soft"]))
        assert p["hard"][n] == pytest.approx(sum(t["hard"]) / len(t["hard"]))
    m = reward_fn.last_metrics
    assert m["canary/n"] == 3 and m["canary/caught"] == 0  # a judge that says yes catches no violated canary
    # one judge call: every record's soft constraints, then the three canaries (hard constraints in English)
    assert len(judge.asked) == 1
    assert [cs for _, _, cs in judge.asked[0][:len(recs)]] == [r["soft_constraints"] for r in recs]
    canary_texts = [c for _, _, cs in judge.asked[0][len(recs):] for c in cs]
    assert len(canary_texts) == 3 and not set(canary_texts) & {c for r in recs for c in r["soft_constraints"]}


def test_judge_scores_count_unreadable_answers_as_caught_and_show_the_readable_recall():
    # truth: 4 violations; the judge catches one readably, one by an unreadable answer, misses two
    true = [False, False, False, False, True, True]
    judged = [False, False, True, True, True, False]
    parsed = [True, False, True, True, True, True]
    s = parts.judge_scores("x", judged, true, parsed)
    assert s["x_recall"] == pytest.approx(2 / 4)
    assert s["x_recall_readable"] == pytest.approx(1 / 3)
    assert s["x_precision"] == pytest.approx(2 / 3)
    assert s["x_unreadable"] == pytest.approx(1 / 6)
    assert s["x_violations"] == 4 and s["x_n"] == 6
    assert math.isnan(parts.judge_scores("y", [True], [True], [True])["y_recall"])  # no violation: no recall


def test_a_batched_run_is_paid_and_reported_by_the_batched_judge():
    cfg = parts.MiniatureConfig()
    assert parts.judge_of(cfg, "soft-only" + parts.BATCHED) == "batched"
    assert parts.judge_of(cfg, "soft-only") == cfg.reward_judge == "bag"  # python run.py: the classifier
    row = {"variant": "mixed" + parts.BATCHED, "soft_true": 0.25, "soft_judged_batched": 0.75,
           "soft_judged_pointwise": 0.5, "judge_batched_recall_readable": 0.2, "judge_batched_unreadable": 0.1,
           "judge_pointwise_recall_readable": 0.9, "judge_pointwise_unreadable": 0.0}
    own = parts.own_judge(cfg, row)
    assert own["soft_judged"] == 0.75 and own["gap"] == pytest.approx(0.5)
    assert parts.cell([dict(row, **own)], "judge_recall") == "20.0 (10.0)"
