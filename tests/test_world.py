"""The synthetic world: records in the kit's format, the hidden soft rules, the grammar, the tokenizer."""

import random

import pytest

from minirlvr import verifiers
from minirlvr.miniature import world
from minirlvr.data import validate_record
from minirlvr.engine.tokenizer import chat_prompt, train_tokenizer


@pytest.mark.parametrize("kind", list(world.MIXES))
def test_records_are_valid_and_deterministic(kind):
    a = world.sample_records(kind, 30, seed=5)
    b = world.sample_records(kind, 30, seed=5)
    c = world.sample_records(kind, 30, seed=6)
    assert a == b
    assert [r["prompt"] for r in a] != [r["prompt"] for r in c]
    for r in a:
        validate_record(r, f"{kind}:{r['key']}")
        for iid, kw in zip(r["instruction_id_list"], r["kwargs"]):
            assert verifiers.describe(iid, kw) in r["prompt"]
        for text in r["soft_constraints"]:
            assert text in r["prompt"]
        assert len(r["world_soft"]) == len(r["soft_constraints"])


def test_training_sets_hold_out_unseen_types_and_kwargs():
    seen_values = {iid: pools[0] for iid, pools in world.KWARG_POOLS.items()}
    for kind in ("hard", "mixed", "soft", "eval_hard"):
        for r in world.sample_records(kind, 200, seed=0):
            for iid, kw in zip(r["instruction_id_list"], r["kwargs"]):
                assert iid in world.TRAIN_HARD
                if iid in seen_values:
                    assert kw in seen_values[iid], (iid, kw)
    for r in world.sample_records("eval_unseen", 200, seed=0):
        (iid,), (kw,) = r["instruction_id_list"], r["kwargs"]
        assert iid in world.UNSEEN_HARD or kw in world.KWARG_POOLS[iid][1]


def test_no_record_pairs_conflicting_hard_constraints():
    for r in world.sample_records("sft", 300, seed=1):
        ids = r["instruction_id_list"]
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                assert b not in verifiers.conflicts(a)


@pytest.mark.parametrize("iid", world.TRAIN_HARD + world.UNSEEN_HARD)
def test_grammar_can_follow_and_ignore_each_hard_constraint(iid):
    rng = random.Random(0)
    followed, ignored = [], []
    for key in range(12):
        r = world.make_record(rng, key, [iid], [])
        followed.append(world.truth(r, world.write_response(r, rng, p_follow=1.0))["hard"][0])
        ignored.append(world.truth(r, world.write_response(r, rng, p_follow=0.0))["hard"][0])
    assert all(followed), followed
    # "less than N words" holds by chance fairly often; the others must fail at least sometimes
    assert sum(ignored) < len(ignored), ignored


@pytest.mark.parametrize("spec", world.SOFT_SPECS)
def test_grammar_can_follow_and_ignore_each_soft_constraint(spec):
    rng = random.Random(1)
    r = world.make_record(rng, 0, [], [spec])
    followed = [world.truth(r, world.write_response(r, rng, p_follow=1.0))["soft"][0] for _ in range(12)]
    ignored = [world.truth(r, world.write_response(r, rng, p_follow=0.0))["soft"][0] for _ in range(30)]
    assert all(followed)
    assert sum(ignored) < len(ignored)


def test_soft_truth_rules():
    assert world.soft_truth(("tone", "positive"), "Tea is lovely at home.")
    assert not world.soft_truth(("tone", "positive"), "Tea is lovely but awful.")
    assert not world.soft_truth(("tone", "positive"), "Tea is plain.")
    assert world.soft_truth(("tone", "negative"), "Tea is gloomy.")
    assert world.soft_truth(("focus", "cost"), "Tea is cheap.")
    assert not world.soft_truth(("focus", "cost"), "Tea is cheap and has little risk.")
    assert world.soft_truth(("audience", "children"), "Tea is good.")
    assert not world.soft_truth(("audience", "children"), "Tea is remarkably good.")
    with pytest.raises(ValueError, match="unknown soft constraint kind"):
        world.soft_truth(("mood", "x"), "Tea.")


def test_contradictory_soft_constraints_are_infeasible():
    rng = random.Random(0)
    both = world.make_record(rng, 0, [], [("tone", "positive"), ("tone", "negative")])
    one = world.make_record(rng, 1, [], [("tone", "positive")])
    assert not world.feasible(both)
    assert world.feasible(one)


def test_tokenizer_round_trip_and_chat_template():
    recs = world.sample_records("sft", 300, seed=0)
    rng = random.Random(0)
    texts = [r["prompt"] for r in recs] + [world.write_response(r, rng) for r in recs]
    tok = train_tokenizer(texts, vocab_size=400)
    assert len(tok) <= 400
    assert tok.pad_token_id != tok.eos_token_id
    for t in texts[:20] + ["Zebra ünïcode, 42!"]:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == t
    p = chat_prompt(tok, "Tell me about tea.")
    assert p.startswith("<|im_start|>user\nTell me about tea.<|im_end|>") and p.endswith("<|im_start|>assistant\n")
    # the prompt and the answer tokenize independently: no BPE merge across the boundary
    joint = tok(p + "Tea is good.", add_special_tokens=False)["input_ids"]
    split = tok(p, add_special_tokens=False)["input_ids"] + tok("Tea is good.", add_special_tokens=False)["input_ids"]
    assert joint == split
