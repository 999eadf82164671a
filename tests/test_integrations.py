"""The TRL and verl adapters score exactly as the kit does: canned completions on IFEval constraints, called the
way each trainer calls them (TRL: keyword columns repeated G times plus its extras; verl: one row at a time or a
batch), compared with verifiers.score and the kit's reward functions."""

import json
import pickle
import subprocess
import sys

import pytest

from minirlvr import verifiers

from minirlvr.reward import constraint as reward
from minirlvr.data import DataError, prompt_text, write_jsonl
from minirlvr.integrations import trl as trl_adapter
from minirlvr.integrations import verl as verl_adapter
from minirlvr.reward.judge import Verdicts

RECORDS = [
    {"key": "a", "prompt": "Write about tea in one line.",
     "instruction_id_list": ["punctuation:no_comma", "keywords:existence", "length_constraints:number_words"],
     "kwargs": [{}, {"keywords": ["tea"]}, {"num_words": 12, "relation": "less than"}]},
    {"key": "b", "messages": [{"role": "system", "content": "You are terse."},
                              {"role": "user", "content": "List two things about a walk."}],
     "instruction_id_list": ["change_case:english_lowercase", "detectable_format:number_bullet_lists"],
     "kwargs": [{}, {"num_bullets": 2}]},
    {"key": "c", "prompt": "Write a letter about the weather.",
     "instruction_id_list": ["startend:end_checker", "detectable_content:postscript", "keywords:frequency"],
     "kwargs": [{"end_phrase": "Any other questions?"}, {"postscript_marker": "P.S."},
                {"keyword": "rain", "frequency": 2, "relation": "at least"}]},
]
COMPLETIONS = [  # G = 3 per record, each constraint both passed and failed
    ["tea is lovely and warm", "Tea, coffee and more", "i like coffee a lot more than anything else in the world"],
    ["* one\n* two", "* One\n* two\n* three", "just text"],
    ["Rain and more rain.\nP.S. see you. Any other questions?", "No rain here.", ""],
]
G = 3
SOFT = {"a": ["Tea lovers should enjoy it.", "Coffee is mentioned."], "c": ["Rain is described."]}


def mixed_records():
    return [dict(r, soft_constraints=SOFT.get(r["key"], [])) for r in RECORDS]


def flat(records):
    """(records, texts) with each record repeated G times, aligned with its completions."""
    return [r for r in records for _ in range(G)], [t for row in COMPLETIONS for t in row]


def kit_hard(record, text, combine):
    """The reward as the kit computes it from verifiers.score's strict verdicts."""
    return reward.combine([float(ok) for ok in verifiers.score(record, text)["strict"]], combine)


class FirstWordJudge:
    """A judge: a soft constraint holds when the response contains its first word. Records what it was shown."""

    def __init__(self):
        self.prompts = []

    def check(self, items):
        self.prompts += [prompt_text(rec) for rec, _, cs in items if cs]
        ok = [[c.split()[0].lower() in text.lower() for c in cs] for _, text, cs in items]
        return Verdicts(ok=ok, parsed=[[True] * len(row) for row in ok], calls=1)


def assert_varied(values, combine):
    """The canned set reaches 0, 1 and (for the mean) values between, so a constant reward would fail."""
    assert 0.0 in values and 1.0 in values and (combine == "product" or any(0 < v < 1 for v in values)), values


def trl_call(fn, rows, completions, conversational=True):
    """Call fn as TRL's GRPOTrainer does: keyword columns (all but `prompt`), each row repeated G times, + extras."""
    rows = [r for r in rows for _ in range(G)]
    prompts = [r["prompt"] if conversational else prompt_text({"messages": r["prompt"]}) for r in rows]
    if conversational:
        completions = [[{"role": "assistant", "content": c}] for c in completions]
    columns = {k: [r[k] for r in rows] for k in rows[0] if k != "prompt"}
    return fn(prompts=prompts, completions=completions, completion_ids=[[1, 2]] * len(rows),
              trainer_state=object(), log_extra=lambda *a: None, log_metric=lambda *a: None,
              source=["x"] * len(rows), **columns)


def test_canned_completions_pass_and_fail_every_constraint():
    records, texts = flat(RECORDS)
    seen = {}
    for rec, text in zip(records, texts):
        for iid, ok in zip(rec["instruction_id_list"], verifiers.score(rec, text)["strict"]):
            seen.setdefault(iid, set()).add(ok)
    assert len(seen) == 8 and all(v == {True, False} for v in seen.values()), seen


@pytest.mark.parametrize("combine", ["mean", "product"])
@pytest.mark.parametrize("conversational", [True, False])
def test_trl_reward_is_the_kits_hard_reward(combine, conversational):
    records, texts = flat(RECORDS)
    expected = [kit_hard(r, t, combine) for r, t in zip(records, texts)]
    assert expected == reward.constraint_reward("hard", combine)(records, texts)[0]
    for kind in ("hard", "mixed"):  # mixed without soft constraints needs no judge and is the hard reward
        fn = trl_adapter.reward_function(reward=kind, combine=combine)
        assert trl_call(fn, trl_adapter.dataset_rows(RECORDS), texts, conversational) == expected
    assert_varied(expected, combine)


def test_trl_rows_through_datasets_and_pickle(tmp_path):
    pytest.importorskip("datasets")
    path = str(tmp_path / "records.jsonl")
    write_jsonl(path, RECORDS)
    rows = trl_adapter.to_dataset(path).to_list()  # Arrow pads each kwargs dict with the others' fields as None
    assert rows[0]["kwargs"][0] and all(v is None for v in rows[0]["kwargs"][0].values())
    assert rows[1]["prompt"] == RECORDS[1]["messages"]
    assert rows[0]["prompt"] == [{"role": "user", "content": RECORDS[0]["prompt"]}]
    fn = pickle.loads(pickle.dumps(trl_adapter.reward_function(combine="product")))  # TRL's async trainer pickles
    assert fn.__name__ == "minirlvr_mixed_product"
    records, texts = flat(RECORDS)
    assert trl_call(fn, rows, texts) == [kit_hard(r, t, "product") for r, t in zip(records, texts)]


def test_trl_completion_text_forms():
    assert trl_adapter.completion_text("plain") == "plain"
    tool_use = [{"role": "assistant", "content": "", "tool_calls": []}, {"role": "tool", "content": "42"},
                {"role": "assistant", "content": "the answer"}]
    assert trl_adapter.completion_text(tool_use) == "the answer"
    blocks = [{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    assert trl_adapter.completion_text(blocks) == "ab"
    assert trl_adapter.reward_function(name="ifeval").__name__ == "ifeval"


@pytest.mark.parametrize("combine", ["mean", "product"])
def test_verl_compute_score_is_the_kits_hard_reward(combine):
    records, texts = flat(RECORDS)
    rows = [r for r in verl_adapter.parquet_rows(RECORDS, split="test") for _ in range(G)]
    assert rows[0]["reward_model"]["style"] == "rule" and rows[0]["extra_info"]["split"] == "test"
    expected = [kit_hard(r, t, combine) for r, t in zip(records, texts)]
    got = [verl_adapter.compute_score(r["data_source"], t, r["reward_model"]["ground_truth"], r["extra_info"],
                                      combine=combine) for r, t in zip(rows, texts)]
    assert got == expected and all(isinstance(x, float) for x in got)
    assert verl_adapter.compute_score_batch([r["data_source"] for r in rows], texts,
                                            [r["reward_model"]["ground_truth"] for r in rows],
                                            [r["extra_info"] for r in rows], combine=combine) == expected
    as_dict = json.loads(rows[0]["reward_model"]["ground_truth"])  # a dict ground truth is accepted too
    assert verl_adapter.compute_score("x", texts[0], as_dict, combine=combine) == expected[0]


def test_verl_batch_takes_numpy_arrays_as_verl_passes_them():
    """verl's batch reward manager (0.6, 0.7.0) passes data_sources and extra_infos as numpy object arrays."""
    np = pytest.importorskip("numpy")
    records, texts = flat(RECORDS)
    rows = [r for r in verl_adapter.parquet_rows(RECORDS) for _ in range(G)]
    sources, extras = (np.array([r[k] for r in rows], dtype=object) for k in ("data_source", "extra_info"))
    got = verl_adapter.compute_score_batch(sources, texts, [r["reward_model"]["ground_truth"] for r in rows], extras)
    assert got == [kit_hard(r, t, "mean") for r, t in zip(records, texts)]


def test_verl_rows_survive_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "train.parquet"
    pd.DataFrame(verl_adapter.parquet_rows(RECORDS)).to_parquet(path)
    back = pd.read_parquet(path).to_dict("records")
    records, texts = flat(RECORDS)
    got = [verl_adapter.compute_score(r["data_source"], t, r["reward_model"]["ground_truth"], r["extra_info"])
           for r, t in zip([r for r in back for _ in range(G)], texts)]
    assert got == [kit_hard(r, t, "mean") for r, t in zip(records, texts)]


@pytest.mark.parametrize("kind", ["mixed", "soft"])
@pytest.mark.parametrize("combine", ["mean", "product"])
def test_judged_rewards_match_the_kit(kind, combine):
    records, texts = flat(mixed_records())
    expected, _ = reward.constraint_reward(kind, combine, FirstWordJudge())(records, texts)
    assert_varied(expected, combine)
    if kind == "mixed":  # the kit's number, rebuilt from the verifiers and the judge's verdicts
        v = FirstWordJudge().check([(r, t, r["soft_constraints"]) for r, t in zip(records, texts)])
        assert expected == [reward.combine([float(x) for x in verifiers.score(r, t)["strict"] + ok], combine)
                            for r, t, ok in zip(records, texts, v.ok)]
    judge = FirstWordJudge()
    fn = trl_adapter.reward_function(reward=kind, combine=combine, judge=judge)
    assert trl_call(fn, trl_adapter.dataset_rows(mixed_records()), texts) == expected
    assert set(judge.prompts) == {"Write about tea in one line.", "Write a letter about the weather."}
    rows = [r for r in verl_adapter.parquet_rows(mixed_records()) for _ in range(G)]
    judge = FirstWordJudge()
    got = [verl_adapter.compute_score(r["data_source"], t, r["reward_model"]["ground_truth"], r["extra_info"],
                                      reward=kind, combine=combine, judge=judge) for r, t in zip(rows, texts)]
    assert got == expected
    assert set(judge.prompts) == {"Write about tea in one line.", "Write a letter about the weather."}


def test_soft_constraints_without_a_judge_raise_naming_the_row():
    rows = trl_adapter.dataset_rows(mixed_records())
    _, texts = flat(RECORDS)
    with pytest.raises(ValueError, match=r"row 0 of the batch \(key 'a'\) has 2 soft constraint.*'soft_constraints'"):
        trl_call(trl_adapter.reward_function(), rows, texts)
    row = verl_adapter.parquet_rows(mixed_records())[2]
    with pytest.raises(ValueError, match=r"row 2 \(key 'c'\) has 1 soft constraint.*judge"):
        verl_adapter.compute_score(row["data_source"], "x", row["reward_model"]["ground_truth"], row["extra_info"])
    with pytest.raises(ValueError, match="needs judge="):
        trl_adapter.reward_function(reward="soft")
    # reward="hard" scores the hard constraints only, as the kit's hard reward does
    records, _ = flat(mixed_records())
    assert trl_call(trl_adapter.reward_function(reward="hard"), rows, texts) == \
        [kit_hard(r, t, "mean") for r, t in zip(records, texts)]


def test_missing_column_and_bad_options_raise():
    rows = [{k: v for k, v in r.items() if k != "instruction_id_list"} for r in trl_adapter.dataset_rows(RECORDS)]
    with pytest.raises(DataError, match="no 'instruction_id_list' column"):
        trl_call(trl_adapter.reward_function(reward="hard"), rows, flat(RECORDS)[1])
    with pytest.raises(ValueError, match="combine mean\\|product"):
        trl_adapter.reward_function(combine="max")
    with pytest.raises(DataError, match="ground_truth is not JSON"):
        verl_adapter.compute_score("minirlvr", "x", "tea", {"index": 3})


def test_unknown_id_names_the_id_and_the_row():
    bad = [dict(r) for r in RECORDS]
    bad[1] = dict(bad[1], instruction_id_list=["change_case:english_lowercase", "no_such:id"])
    with pytest.raises(DataError, match=r"row 3 of the batch \(key 'b'\).*unknown instruction id 'no_such:id'"):
        trl_call(trl_adapter.reward_function(), trl_adapter.dataset_rows(bad), flat(RECORDS)[1])
    row = verl_adapter.parquet_rows(bad)[1]
    with pytest.raises(DataError, match=r"row 1 \(key 'b'\).*unknown instruction id 'no_such:id'"):
        verl_adapter.compute_score(row["data_source"], "x", row["reward_model"]["ground_truth"], row["extra_info"])
    wrong_kwargs = [dict(RECORDS[0], kwargs=[{}, {"keyword": ["tea"]}, {"num_words": 12, "relation": "less than"}])]
    with pytest.raises(DataError, match=r"row 0 .*keywords:existence: unexpected kwarg 'keyword'"):
        trl_call(trl_adapter.reward_function(), trl_adapter.dataset_rows(wrong_kwargs), COMPLETIONS[0])


def test_core_modules_do_not_import_trainers():
    code = ("import sys, minirlvr.train, minirlvr.reward.constraint, minirlvr.pipeline.reproduce, minirlvr.integrations.trl, "
            "minirlvr.integrations.verl; bad = [m for m in ('trl', 'verl', 'datasets') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd="/", check=True, capture_output=True)
