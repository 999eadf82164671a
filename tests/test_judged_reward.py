"""Hard / soft / mixed rewards with a judge: which constraint pays (parts), mean vs product, unreadable answers,
the canaries and the reward-hacking monitor, and `train --reward=mixed` with the policy's base as the judge."""

import json
import math

import pytest

import minirlvr.train as train_mod
from minirlvr.commands import train as train_cmd
from minirlvr import verifiers
from minirlvr.reward.judge import Verdicts
from minirlvr.reward.llm_judge import adapters_enabled
from minirlvr.reward.monitor import CanaryMonitor, hacking_signal
from minirlvr.reward.constraint import call_reward, constraint_reward, hard_reward

LOWER = {"id": "change_case:english_lowercase", "kw": {}}
TEA = {"id": "keywords:existence", "kw": {"keywords": ["tea"]}}


def record(hard, soft, prompt="Write."):
    return {"prompt": prompt, "instruction_id_list": [h["id"] for h in hard], "kwargs": [h["kw"] for h in hard],
            "soft_constraints": soft}


class ScriptedJudge:
    """The judge interface by rule: a constraint is satisfied iff `rule(constraint, response)`; None = unreadable."""

    def __init__(self, rule):
        self.rule, self.items = rule, []

    def check(self, items):
        self.items += items
        said = [[self.rule(c, text) for c in cs] for _, text, cs in items]
        return Verdicts(ok=[[s is True for s in row] for row in said], parsed=[[s is not None for s in row]
                                                                                 for row in said],
                        calls=sum(len(r) for r in said), unparseable=sum(s is None for r in said for s in r))


def soft_rule(c, text):
    if c == "Be warm.":
        return "warm" in text
    if c == "Be brief.":
        return None if "??" in text else len(text.split()) < 8
    return "DESCRIBED" in text  # canaries (hard constraints in English): a judge that only trusts a magic word


RECS = [record([LOWER, TEA], ["Be warm.", "Be brief."]), record([TEA], [])]
TEXTS = ["a warm cup of tea.", "A COLD CUP OF TEA ??", "tea.", "nothing here"]
BATCH = [RECS[0], RECS[0], RECS[1], RECS[1]]


def test_mixed_mean_parts_name_each_constraint():
    r, parts = call_reward(constraint_reward("mixed", "mean", ScriptedJudge(soft_rule)), BATCH, TEXTS)
    # rollout 0: lower 1, tea 1, warm 1, brief 1; 1: lower 0, tea 1, warm 0, brief unreadable -> 0
    assert r.tolist() == [1.0, 0.25, 1.0, 0.0]
    assert parts["hard:change_case:english_lowercase"][:2] == [1.0, 0.0]
    assert math.isnan(parts["hard:change_case:english_lowercase"][2])
    assert parts["hard:keywords:existence"] == [1.0, 1.0, 1.0, 0.0]
    assert parts["soft:0"][:2] == [1.0, 0.0] and parts["soft:1"][:2] == [1.0, 0.0]
    assert all(math.isnan(x) for x in parts["soft:0"][2:])


def test_product_soft_and_hard_kinds():
    judge = ScriptedJudge(soft_rule)
    r, _ = call_reward(constraint_reward("mixed", "product", judge), BATCH, TEXTS)
    assert r.tolist() == [1.0, 0.0, 1.0, 0.0]  # VerIF: any failure gives 0
    r, parts = call_reward(constraint_reward("soft", "mean", judge), BATCH, TEXTS)
    assert r.tolist() == [1.0, 0.0, 0.0, 0.0] and not any(k.startswith("hard:") for k in parts)
    r, parts = call_reward(constraint_reward("hard", "mean"), BATCH, TEXTS)
    assert json.dumps([r.tolist(), parts]) == json.dumps(list(hard_reward(BATCH, TEXTS)))
    r, _ = call_reward(constraint_reward("hard", "product"), BATCH, TEXTS)
    assert r.tolist() == [1.0, 0.0, 1.0, 0.0]


def test_reward_metrics_count_unreadable_answers():
    fn = constraint_reward("soft", "mean", ScriptedJudge(soft_rule))
    fn(BATCH, TEXTS)
    m = fn.last_metrics
    assert m["judge/unparseable"] == 1 and m["judge/soft_pass"] == pytest.approx(2 / 4)
    assert "canary/n" not in m


def test_canaries_compare_the_judge_with_the_verifiers():
    judge = ScriptedJudge(soft_rule)
    fn = constraint_reward("mixed", "mean", judge, canaries=6, seed=3)
    texts = ["a warm cup of tea.", "A COLD CUP OF TEA DESCRIBED", "coffee.", "nothing here"]
    r, _ = call_reward(fn, BATCH, texts)
    assert r.tolist() == [1.0, 0.5, 0.0, 0.0]  # the canaries' answers never reach the reward
    # all 6 hard constraints of the batch are canaries; the judge says "satisfied" iff "DESCRIBED" is in the text
    lower, tea = verifiers.describe(LOWER["id"], {}), verifiers.describe(TEA["id"], TEA["kw"])
    asked = [(text, c) for _, text, cs in judge.items for c in cs if c not in ("Be warm.", "Be brief.")]
    assert sorted(asked) == sorted([(texts[0], lower), (texts[0], tea), (texts[1], lower), (texts[1], tea),
                                    (texts[2], tea), (texts[3], tea)])
    m = fn.last_metrics
    # truth / judge: (0, lower) T/F, (0, tea) T/F, (1, lower) F/T, (1, tea) T/T, (2, tea) F/F, (3, tea) F/F
    assert m["canary/n"] == 6 and m["canary/violated"] == 3
    assert m["canary/recall_violated"] == pytest.approx(2 / 3) and m["canary/agreement"] == pytest.approx(3 / 6)
    assert m["monitor/reward_hacking"] == 0.0 and m["judge/unparseable"] == 0


def test_canaries_are_a_sample():
    judge = ScriptedJudge(soft_rule)
    fn = constraint_reward("hard", "mean", judge, canaries=4, seed=0)
    fn(BATCH, TEXTS)
    first = [(t, c) for _, t, cs in judge.items for c in cs]
    assert len(first) == len(set(first)) == 4 and fn.last_metrics["canary/n"] == 4
    assert math.isnan(fn.last_metrics["judge/soft_pass"])  # hard reward: no soft verdicts
    draws = set()
    for _ in range(5):
        judge.items.clear()
        fn(BATCH, TEXTS)
        draws.add(tuple(sorted((t, c) for _, t, cs in judge.items for c in cs)))
    assert len(draws) > 1  # a new sample each step


def test_monitor_signal_on_synthetic_series():
    flat = [(0.5, 10, 6)] * 20
    assert hacking_signal(flat) is None
    hacked = [(0.4, 10, 6)] * 10 + [(0.6, 10, 3)] * 10  # reward up 0.2, recall 0.6 -> 0.3
    sig = hacking_signal(hacked)
    assert sig == pytest.approx({"reward_before": 0.4, "reward_after": 0.6, "recall_before": 0.6, "recall_after": 0.3})
    assert hacking_signal(hacked[1:]) is None  # fewer than two windows
    assert hacking_signal([(0.4, 10, 6)] * 10 + [(0.6, 10, 6)] * 10) is None  # reward up, recall steady: learning
    assert hacking_signal([(0.4, 10, 6)] * 10 + [(0.4, 10, 3)] * 10) is None  # recall down, reward flat
    few = [(0.4, 0, 0)] * 9 + [(0.4, 4, 4)] + [(0.6, 4, 0)] * 10  # 4 violations before: too few to compare
    assert hacking_signal(few) is None
    nan_steps = [(math.nan, 1, 1)] * 5 + [(0.4, 1, 1)] * 5 + [(0.6, 1, 0)] * 10
    assert hacking_signal(nan_steps) == pytest.approx({"reward_before": 0.4, "reward_after": 0.6,
                                                       "recall_before": 1.0, "recall_after": 0.0})


def test_monitor_warns_once():
    said = []
    mon = CanaryMonitor(window=3)
    flags = [mon.update(r, v, c, log=said.append) for r, v, c in [(0.4, 5, 4)] * 3 + [(0.8, 5, 1)] * 5]
    assert flags == [0.0] * 5 + [1.0] * 3  # from the first step whose last 3 steps differ enough from the 3 before
    assert len(said) == 1 and "possible reward hacking" in said[0] and "0.80" in said[0]


# ---------------------------------------------------------------------------------------------- training

WORDS = [f"w{i}" for i in range(20)] + ["x", "yes", "no"]


@pytest.fixture(scope="module")
def folder(tiny_folder):
    return tiny_folder(WORDS, seed=0)


def write_data(path, soft=True):
    rows = [{"key": i, "prompt": f"w{i} w{i + 1}", "instruction_id_list": ["keywords:existence",
                                                                          "change_case:english_lowercase"],
             "kwargs": [{"keywords": ["x"]}, {}], **({"soft_constraints": [f"w{i + 2} w3"]} if soft else {})}
            for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def train_args(tmp_path, folder, data, **kw):
    args = dict(model=folder, data=data, out_dir=str(tmp_path / "run"), steps=3, prompts_per_step=2, group_size=4,
                max_new_tokens=5, micro_batch_size=8, lora_r=4, lora_alpha=8, progress="false", log_every=0,
                rollouts_every=0, ckpt_every=0, beta=0.1, reward="mixed", judge_model="base",
                judge_mode="pointwise", canaries=4)
    args.update(kw)
    return [f"--{k}={v}" for k, v in args.items()]


def test_train_mixed_with_the_base_as_judge(tmp_path, folder, monkeypatch):
    real = train_mod.reward_from_config
    seen = []

    def watched(cfg, model, tokenizer):
        fn = real(cfg, model, tokenizer)

        def reward_fn(records, completions):
            seen.append(("before judge", adapters_enabled(model)))  # after the previous step's reference pass
            out = fn(records, completions)
            seen.append(("after judge", adapters_enabled(model)))
            reward_fn.last_metrics = fn.last_metrics
            return out

        return reward_fn

    monkeypatch.setattr(train_mod, "reward_from_config", watched)
    train_cmd.main(train_args(tmp_path, folder, write_data(tmp_path / "d.jsonl")))
    assert seen == [("before judge", True), ("after judge", True)] * 3
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        for key in ("reward/hard:keywords:existence", "reward/soft:0", "judge/calls", "judge/unparseable",
                    "judge/soft_pass", "canary/n", "canary/agreement", "canary/violated", "monitor/reward_hacking"):
            assert key in r, key
        assert r["canary/n"] == 4 and 0 <= r["canary/agreement"] <= 1
        assert r["judge/calls"] >= 1  # soft questions + canaries, identical ones merged


def test_train_batched_judge_runs(tmp_path, folder):
    train_cmd.main(train_args(tmp_path, folder, write_data(tmp_path / "d.jsonl"), steps=1, judge_mode="batched",
                              reward="soft", reward_combine="product", canaries=0))
    row = json.loads(open(tmp_path / "run" / "metrics.jsonl").readline())
    assert "reward/soft:0" in row and "judge/unparseable" in row and "canary/n" not in row
    assert not any(k.startswith("reward/hard:") for k in row)


def test_bad_reward_setups_fail_at_start(tmp_path, folder):
    data = write_data(tmp_path / "hard_only.jsonl", soft=False)
    with pytest.raises(SystemExit, match=f"--reward=soft: no record in --data={data} has soft_constraints"):
        train_cmd.main(train_args(tmp_path, folder, data, reward="soft"))
    with pytest.raises(SystemExit, match=f"--judge_model={tmp_path / 'nope'}: model path"):
        train_cmd.main(train_args(tmp_path, folder, data, out_dir=str(tmp_path / "run2"),
                                  judge_model=str(tmp_path / "nope")))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "w1", "soft_constraints": ["ok", 3]}\n')
    with pytest.raises(SystemExit, match="bad.jsonl:1: field 'soft_constraints' must be a list of strings"):
        train_cmd.main(train_args(tmp_path, folder, str(bad), out_dir=str(tmp_path / "run3")))
