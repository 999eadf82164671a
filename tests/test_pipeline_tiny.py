"""`python run.py reproduce --preset tiny`: the real-model pipeline end to end on the CPU (a tiny random Qwen2 built
on the spot, data from the kit's seed tasks, the LLM judge and critic as the base with the adapter off, an
IFEval-format fixture file), and a run killed after its first arm and resumed gives the same results.json."""

import importlib.util
import json
import os

import pytest

from minirlvr.commands import reproduce as reproduce_cmd
from minirlvr.pipeline import reproduce as pipeline

IFEVAL = [
    {"key": 1, "prompt": "Write a short note about tea. Your entire response should be in English, and in all "
                         "lowercase letters.", "instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}]},
    {"key": 2, "prompt": "Describe a river. Do not use any commas in your response.",
     "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    {"key": 3, "prompt": "Tell me about bread. Include the keywords bread and oven in the response.",
     "instruction_id_list": ["keywords:existence"], "kwargs": [{"keywords": ["bread", "oven"]}]},
]
TIMING = {"wall_s", "train_s", "cpu_s", "policy", "responses_s", "machine"}  # machine: its speed, measured each time
# the [test] extra installs tensorboard; without it the pipeline runs report to nothing
REPORT_TO = ["--report-to", "tensorboard"] if importlib.util.find_spec("tensorboard") else []


def without_timing(obj):
    if isinstance(obj, dict):
        return {k: without_timing(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [without_timing(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    path = root / "ifeval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in IFEVAL))
    return root, str(path)


@pytest.fixture(scope="module")
def straight(fixture):
    root, ifeval = fixture
    out = str(root / "straight")
    # --report-to reaches every training run (tensorboard: in the [test] extra); no number of the report changes
    reproduce_cmd.main(["--preset", "tiny", "--out", out, "--ifeval", ifeval, "--threads", "1"] + REPORT_TO)
    return out


def test_tiny_pipeline_writes_every_output(straight):
    for name in ("results.md", "results.json", "metrics.jsonl", "curves.png", "config.json", "start_eval.json",
                 "data/hard-only.jsonl", "data/refined.jsonl", "build/heldout.jsonl", "runs/mixed-s0/adapter",
                 *(["runs/mixed-s0/tensorboard", "runs/refined-s0/tensorboard"] if REPORT_TO else [])):
        assert os.path.exists(os.path.join(straight, name)), name
    res = json.load(open(os.path.join(straight, "results.json")))
    assert [r["variant"] for r in res["runs"]] == ["hard-only", "soft-only", "mixed", "refined"]
    for r in res["runs"]:
        for key in ("heldout/prompt_level_strict", "ifeval/prompt_level_loose", "judge/gap", "tokens_trained"):
            assert key in r, key
        assert r["tokens_trained"] > 0
    # each arm trained with its own reward; every arm logged canaries
    rows = [json.loads(line) for line in open(os.path.join(straight, "metrics.jsonl"))]
    parts = {v: {k for r in rows if r["variant"] == v for k in r} for v in ("hard-only", "soft-only", "mixed")}
    assert not any(k.startswith("reward/soft:") for k in parts["hard-only"])
    assert any(k.startswith("reward/soft:") for k in parts["soft-only"])
    assert not any(k.startswith("reward/hard:") for k in parts["soft-only"])
    assert any(k.startswith("reward/hard:") for k in parts["mixed"]) and "canary/n" in parts["mixed"]
    table = open(os.path.join(straight, "results.md")).read()
    assert "| refined |" in table and "The paper's findings" in table and "ifeval P-loose" in table
    # the attention stage on the held-out split: the start and every arm, hard constraints only (no soft ones)
    att = res["attention"]
    assert set(att["runs"]) == {f"{a}-s0" for a in ("hard-only", "soft-only", "mixed", "refined")}
    for a in [att["start"], *att["runs"].values()]:
        assert a["records"] > 0 and "all" in a["groups"] and "soft" not in a["groups"]
    records = [json.loads(line) for line in open(os.path.join(straight, "runs", "mixed-s0",
                                                                  "attention_records.jsonl"))]
    assert len(records) == att["runs"]["mixed-s0"]["records"]
    assert all(r["response"] and r["constraint_spans"] for r in records)
    assert "#### Attention to the constraint text" in table and "held-out prompt-level strict" in table


def test_killed_after_the_first_arm_and_resumed_gives_the_same_results(fixture, straight, monkeypatch):
    root, ifeval = fixture
    out = str(root / "killed")
    argv = ["--preset", "tiny", "--out", out, "--ifeval", ifeval, "--threads", "1"]
    real, calls = pipeline.run_one, []

    def killed_after_first_arm(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run_one", killed_after_first_arm)
    with pytest.raises(KeyboardInterrupt):
        reproduce_cmd.main(argv)
    monkeypatch.setattr(pipeline, "run_one", real)
    assert os.path.exists(os.path.join(out, "runs", "hard-only-s0", "result.json"))
    reproduce_cmd.main(argv + ["--resume"])
    log = open(os.path.join(out, "log.txt")).read()
    assert "hard-only-s0: finished earlier" in log and "data: read back" in log
    a = json.load(open(os.path.join(straight, "results.json")))
    b = json.load(open(os.path.join(out, "results.json")))
    assert without_timing(a) == without_timing(b)


def test_bad_preset_options(fixture, tmp_path):
    _, ifeval = fixture
    with pytest.raises(SystemExit, match="--ifbench: no such file"):
        reproduce_cmd.main(["--preset", "tiny", "--out", str(tmp_path), "--ifbench", str(tmp_path / "nope.jsonl")])
    with pytest.raises(SystemExit, match="--data is for the real-model presets"):
        reproduce_cmd.main(["--smoke", "--out", str(tmp_path), "--data", ifeval])
    with pytest.raises(SystemExit, match=r"'Qwen/Qwen2.5-0.5B-Instruct' is neither a local folder nor in the local "
                                         r"Hugging Face cache.*huggingface-cli download"):
        reproduce_cmd.main(["--preset", "qwen2.5-0.5b", "--out", str(tmp_path / "q")])
    assert not os.path.exists(tmp_path / "q")  # nothing written


def test_an_earlier_run_is_never_deleted_without_overwrite(fixture, straight, tmp_path):
    root, ifeval = fixture
    before = sorted(os.listdir(straight))
    with pytest.raises(SystemExit) as e:
        reproduce_cmd.main(["--preset", "tiny", "--out", straight, "--ifeval", ifeval])
    assert "holds an earlier run" in str(e.value) and "--resume" in str(e.value) and "--overwrite" in str(e.value)
    assert sorted(os.listdir(straight)) == before
    with pytest.raises(SystemExit, match="exclude each other"):
        reproduce_cmd.main(["--preset", "tiny", "--out", straight, "--resume", "--overwrite"])
    # --overwrite deletes what is there and starts over (a folder of our own, not the shared fixture)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "old.txt").write_text("x")
    import minirlvr.commands.reproduce as cmd
    cmd.claim_folder({"out": str(mine), "resume": False, "overwrite": True})
    assert not mine.exists()
