"""The learned judge: it learns the world's soft rules from examples, and its violation precision/recall."""

import random

import pytest

from minirlvr.reward import judge as judge_api
from minirlvr.miniature import judge as judge_mod
from minirlvr.miniature import world
from minirlvr.engine.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    recs = world.sample_records("sft", 400, seed=0)
    rng = random.Random(0)
    return train_tokenizer([r["prompt"] for r in recs] + [world.write_response(r, rng) for r in recs], 600)


def test_precision_recall_on_violations():
    judged = [True, False, False, True, False]
    truth = [True, False, True, False, False]
    # flagged (judged no): 1, 2, 4; violations (truth no): 1, 3, 4 -> tp = 2
    p, r = judge_api.precision_recall(judged, truth)
    assert p == pytest.approx(2 / 3) and r == pytest.approx(2 / 3)
    p, r = judge_api.precision_recall([True, True], [True, True])
    assert p != p and r != r  # nothing flagged, nothing violated: undefined, not 1.0


def test_judge_learns_better_than_the_majority_answer(tokenizer):
    j, stats = judge_mod.train_judge(judge_mod.JudgeConfig(n_records=1500, epochs=6), tokenizer, log=lambda m: None)
    held = judge_mod.examples(300, seed=99)
    c, r, y = zip(*held)
    yes = j.yes(list(c), list(r))
    acc = sum(a == b for a, b in zip(yes, y)) / len(y)
    majority = max(sum(y), len(y) - sum(y)) / len(y)
    assert acc > majority + 0.05, (acc, majority)
    assert stats["examples"] > 1500


def test_judge_cache_round_trip(tmp_path, tokenizer):
    cfg = judge_mod.JudgeConfig(n_records=100, epochs=1)
    msgs = []
    j1, s1 = judge_mod.build_or_load(cfg, str(tmp_path), tokenizer, log=msgs.append)
    j2, s2 = judge_mod.build_or_load(cfg, str(tmp_path), tokenizer, log=msgs.append)
    assert "cached" in msgs[-1] and "cached" not in msgs[0]
    texts = ["Use a warm, positive tone.", "Focus on the cost."]
    resp = ["Tea is lovely.", "Tea is cheap."]
    assert j1.prob(texts, resp).tolist() == j2.prob(texts, resp).tolist()
    assert s1 == s2
    assert j1.yes([], []) == []


def test_judge_interface_gives_the_classifier_verdicts_unchanged(tokenizer):
    # the experiment's reward and evaluation ask through judge_soft / check: the verdicts must be exactly the ones
    # `yes` gives on the same (constraint, response) pairs, in one batch, or the miniature's table would move
    j, _ = judge_mod.train_judge(judge_mod.JudgeConfig(n_records=200, epochs=1), tokenizer, log=lambda m: None)
    recs = world.sample_records("mixed", 12, seed=5)
    rng = random.Random(1)
    texts = [world.write_response(r, rng) for r in recs]
    v = judge_api.judge_soft(j, recs, texts)
    flat = [(c, t) for r, t in zip(recs, texts) for c in r.get("soft_constraints", [])]
    yes = j.yes([c for c, _ in flat], [t for _, t in flat])
    assert [x for row in v.ok for x in row] == yes and len(flat) > len(recs) // 2
    assert [len(row) for row in v.ok] == [len(r.get("soft_constraints", [])) for r in recs]
    assert all(all(row) for row in v.parsed) and v.unparseable == 0 and v.calls == 1
    assert j.check([(None, texts[0], [])]).ok == [[]] and j.check([]).calls == 0
