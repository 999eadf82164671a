"""refine.py: the conflict table, one soft constraint per prompt, the learnability filter; the miniature's feasibility critic."""

import random

import pytest

from minirlvr.refine import filters as refine
from minirlvr.miniature import world
from minirlvr.miniature.parts import world_critic


def test_hard_conflict_uses_the_verifiers_table():
    rec = {"prompt": "x", "instruction_id_list": ["change_case:english_lowercase", "change_case:english_capital"],
           "kwargs": [{}, {}]}
    assert refine.hard_conflict(rec) == ("change_case:english_lowercase", "change_case:english_capital")
    rec["instruction_id_list"] = ["change_case:english_lowercase", "punctuation:no_comma"]
    assert refine.hard_conflict(rec) is None


def test_critic_drops_conflicting_and_infeasible_prompts():
    rng = random.Random(0)
    ok = world.make_record(rng, 0, ["punctuation:no_comma"], [("tone", "positive")])
    contradictory = world.make_record(rng, 1, [], [("tone", "positive"), ("tone", "negative")])
    too_short = world.make_record(rng, 2, ["detectable_format:number_bullet_lists", "length_constraints:number_words"], [])
    too_short["kwargs"] = [{"num_bullets": 3}, {"relation": "less than", "num_words": 12}]
    conflicting = dict(ok, key=3, instruction_id_list=["change_case:english_lowercase", "change_case:english_capital"],
                       kwargs=[{}, {}])
    kept, dropped = world_critic([ok, contradictory, too_short, conflicting], soft_check=None)
    assert [r["key"] for r in kept] == [0]
    assert dropped == {"conflict": 1, "infeasible": 2}


def test_critic_uses_the_given_soft_judge():
    rec = world.make_record(random.Random(0), 0, [], [("tone", "positive")])
    kept, dropped = world_critic([rec], soft_check=lambda c, r: False)
    assert kept == [] and dropped["infeasible"] == 1


def test_one_soft_keeps_one_constraint_and_its_text():
    rng = random.Random(0)
    rec = world.make_record(rng, 0, ["punctuation:no_comma"], [("tone", "positive"), ("focus", "cost"),
                                                              ("audience", "children")])
    out = refine.one_soft(rec, random.Random(3))
    assert len(out["soft_constraints"]) == 1 and len(out["world_soft"]) == 1
    assert world.SOFT_TEXT[tuple(out["world_soft"][0])] == out["soft_constraints"][0]
    for text in rec["soft_constraints"]:
        assert (text in out["prompt"]) == (text == out["soft_constraints"][0])
    assert out["instruction_id_list"] == rec["instruction_id_list"]
    assert refine.one_soft(out, rng) is out
    assert len(rec["soft_constraints"]) == 3  # the input is not modified


def test_learnable_keeps_rates_strictly_inside():
    recs = [{"key": i} for i in range(5)]
    kept = refine.learnable(recs, [0.0, 0.25, 1.0, 0.5, 0.999])
    assert [r["key"] for r in kept] == [1, 3, 4]
    assert [r["key"] for r in refine.learnable(recs, [0.0, 0.25, 1.0, 0.5, 0.9], low=0.3, high=0.8)] == [3]
    with pytest.raises(ValueError, match="5 records but 2 pass rates"):
        refine.learnable(recs, [0.5, 0.5])
