"""`eval --bench cfbench|followbench|multi-if` end to end on a tiny random chat model saved to disk: responses,
metrics and a table are written; a killed run resumes without regenerating a finished turn and refuses other
settings; a judged benchmark without a judge is an error; turn t is asked with the model's own earlier responses.
The tiny judge's answers are unreadable: the reports count them (the scoring rules are tested in test_cfbench.py,
test_followbench.py and test_multiif.py against the official code's verdicts)."""

import json

import pytest
from test_eval_cli import TEMPLATE, WORDS, base, read  # noqa: F401  (base: the tiny model fixture)

from minirlvr.commands import eval as eval_cmd
from minirlvr.engine import chat
from minirlvr.evaluation import conversations
from minirlvr.evaluation.benchmarks import Conversation

CFBENCH = [{"idx": i, "prompt": p, "split": s, "gold": "",
            "criteria": [["the answer mentions the river", "主需", "content", "topic"],
                         ["the answer is short", "次需", "format", "length"]]}
           for i, (p, s) in enumerate([("Write about the river", "easy"), ("hello sea", "hard"),
                                       ("the sea is calm", "easy")])]
FOLLOWBENCH = [{"example_id": e, "level": lv, "source": "tiny", "target": "",
                "instruction": "Write about the river" + " and the sea" * lv}
               for e in (1, 2) for lv in (0, 1, 2)]
FAST = ["--max-new-tokens", "6", "--device", "cpu", "--judge-max-new-tokens", "6"]


@pytest.fixture
def cfbench_data(tmp_path):
    path = tmp_path / "cfbench_data.json"
    path.write_text(json.dumps(CFBENCH, ensure_ascii=False), encoding="utf-8")
    return str(path)


@pytest.fixture
def followbench_data(tmp_path):
    path = tmp_path / "content_constraints.json"
    path.write_text(json.dumps(FOLLOWBENCH), encoding="utf-8")
    return str(path)


def run(base, bench, data, out, *extra):
    return eval_cmd.main(["--model", base, "--bench", bench, "--data", data, "--out", str(out), "--judge-model", base,
                          *FAST, *extra])


def test_cfbench_official_end_to_end_then_rescored_from_its_files(base, cfbench_data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    report = run(base, "cfbench", cfbench_data, out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["bench"] == "cfbench" and metrics["judge"] == {"model": base, "mode": "official"}
    assert set(metrics["metrics"]) >= {"CSR", "ISR", "PSR"} and "PSR" in metrics["headline"]
    assert 0 <= report["headline"]["PSR"] <= 1
    rows = read(out / "responses.jsonl")
    assert [r["key"] for r in rows] == ["0", "1", "2"] and all(len(r["turns"]) == 1 for r in rows)
    assert len(read(out / "judge_answers.jsonl")) == 3  # one official prompt per item, cached
    # a rerun loads no policy and asks the judge nothing new: generations and judge answers are read back
    monkeypatch.setattr("minirlvr.engine.model.load_for_inference", lambda *a, **k: pytest.fail("policy loaded"))
    calls = []
    real = chat.complete
    monkeypatch.setattr(chat, "complete", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = run(base, "cfbench", cfbench_data, out)
    assert again["metrics"] == report["metrics"] and calls == []


def test_followbench_pointwise_end_to_end(base, followbench_data, tmp_path):
    out = tmp_path / "out"
    report = run(base, "followbench", followbench_data, out, "--judge-mode", "pointwise")
    assert report["judge"]["mode"] == "pointwise"
    assert {"HSR/level1", "HSR/level2", "SSR/level1", "CSL"} <= set(report["metrics"])
    gens = read(out / "generations.jsonl")[1:]
    assert len(gens) == 4  # levels 1-2 of two instructions: level 0 is shown to the judge, never asked
    assert "unreadable" in report["table"]
    assert "NaN" not in (out / "metrics.json").read_text()  # strict JSON


def test_killed_run_resumes_and_refuses_other_settings(base, cfbench_data, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run(base, "cfbench", cfbench_data, out, "--batch-rows", "1")
    final = out / "generations.jsonl"
    lines = final.read_text().splitlines(keepends=True)
    # as if killed while writing the third conversation: the partial file holds two turns and a cut line
    (out / "generations.partial.jsonl").write_text("".join(lines[:3]) + lines[3][:20])
    final.unlink()
    (out / "metrics.json").unlink()
    asked = []
    real = chat.complete
    monkeypatch.setattr(chat, "complete", lambda m, t, prompts, **k: asked.append(len(prompts)) or real(m, t, prompts, **k))
    run(base, "cfbench", cfbench_data, out, "--batch-rows", "1")
    regenerated = [r for r in read(final)[1:]]
    assert [r["index"] for r in regenerated] == [0, 1, 2]
    assert asked[0] == 1 and len(asked) == 1  # only the third conversation was generated again (the judge: cached)
    with pytest.raises(SystemExit) as e:
        run(base, "cfbench", cfbench_data, out, "--max-new-tokens", "7")
    assert "max_new_tokens" in str(e.value) and "other settings" in str(e.value)


def test_judged_benchmark_needs_a_judge_and_bad_data_names_the_place(base, cfbench_data, tmp_path):
    with pytest.raises(SystemExit) as e:
        eval_cmd.main(["--model", base, "--bench", "cfbench", "--data", cfbench_data, "--out", str(tmp_path / "o"),
                       "--device", "cpu"])
    assert "--judge-model" in str(e.value)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{**CFBENCH[0], "split": "medium"}]), encoding="utf-8")
    with pytest.raises(SystemExit) as e:
        run(base, "cfbench", str(bad), tmp_path / "o2")
    assert "bad.json: item 0" in str(e.value) and "'split'" in str(e.value)
    with pytest.raises(SystemExit):
        eval_cmd.parse_args(["--model", base, "--bench", "cfbench", "--data", cfbench_data, "--samples", "2",
                             "--temperature", "1"])


def test_turn_t_is_asked_with_the_models_own_earlier_responses():
    conv = Conversation("k", ("first", "second", "third"))
    done = {(0, 1): {"response": "one"}, (0, 2): {"response": "two"}}
    assert conversations.chat_of(conv, 1, done, 0) == [{"role": "user", "content": "first"}]
    assert conversations.chat_of(conv, 3, done, 0) == [
        {"role": "user", "content": "first"}, {"role": "assistant", "content": "one"},
        {"role": "user", "content": "second"}, {"role": "assistant", "content": "two"},
        {"role": "user", "content": "third"}]


def test_strict_json_has_no_nan():
    from minirlvr.data import strict_json, to_json

    assert strict_json({"a": float("nan"), 1: [float("inf"), 0.5]}) == {"a": None, "1": [None, 0.5]}
    assert to_json([float("nan")]) == "[null]"


def test_multiif_three_turns_each_asked_with_the_models_own_responses(base, tmp_path, monkeypatch):
    from test_multiif import _row, _write

    data = str(_write(tmp_path, [_row("a", turns=3), _row("b", turns=2)]))
    asked = []
    real = chat.complete
    monkeypatch.setattr(chat, "complete", lambda m, t, prompts, **k: asked.extend(prompts) or real(m, t, prompts, **k))
    out = tmp_path / "out"
    report = eval_cmd.main(["--model", base, "--bench", "multi-if", "--data", data, "--out", str(out),
                            "--max-new-tokens", "5", "--device", "cpu"])
    gens = {(r["index"], r["turn"]): r["response"] for r in read(out / "generations.jsonl")[1:]}
    assert sorted(gens) == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2)]  # b has no turn 3
    third = [p for p in asked if len(p) == 5]  # turn 3: user, assistant, user, assistant, user
    assert third == [[{"role": "user", "content": "prompt 1\nsecond line"},
                      {"role": "assistant", "content": gens[(0, 1)]},
                      {"role": "user", "content": "prompt 2\nsecond line"},
                      {"role": "assistant", "content": gens[(0, 2)]},
                      {"role": "user", "content": "prompt 3\nsecond line"}]]
    assert {"turn1/overall", "turn2/overall", "turn3/overall", "average/overall"} <= set(report["metrics"])
    assert report["judge"] is None and "turn 3" in report["table"]
    rows = read(out / "responses.jsonl")
    assert [len(r["turns"]) for r in rows] == [3, 2] and rows[0]["turns"][1]["response"] == gens[(0, 2)]
