"""The pipeline on the miniature's smallest preset (--smoke): outputs, resume, bad options, the SFT cache; the
miniature presets carry exactly the numbers the experiment had before it became one preset of the pipeline."""

import json
import os

import pytest

from minirlvr.commands import reproduce as reproduce_cmd
from minirlvr.miniature import parts, sft


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    out, cache = str(root / "out"), str(root / "cache")
    reproduce_cmd.main(["--smoke", "--out", out, f"--cache={cache}", "--threads", "1"])
    return out, cache


def test_smoke_run_writes_every_output(smoke):
    out, _ = smoke
    for name in ("results.md", "results.json", "metrics.jsonl", "curves.png", "judge_curves.png", "config.json",
                 "start_eval.json",
                 "log.txt", "data/hard-only.jsonl", "data/refined.jsonl"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    with open(os.path.join(out, "results.json")) as f:
        res = json.load(f)
    variants = [r["variant"] for r in res["runs"]]
    assert variants == parts.ARMS + ["soft-only, batched judge", "mixed, batched judge", "hard-only full-FT"]
    for r in res["runs"]:
        for key in ("hard_prompt", "hard_instr", "soft_true", "soft_judged", "gap", "unseen", "wall_s",
                    "canary_recall_start", "canary_recall_end", "judge_unreadable_train"):
            assert key in r
        for judge in parts.JUDGES:  # every judge on every policy's answers, readable rate included
            for key in ("soft_judged_{}", "judge_{}_recall", "judge_{}_recall_readable", "judge_{}_unreadable"):
                assert key.format(judge) in r
            # the LM judges also on hard constraints, asked as canaries (the classifier knows soft ones only)
            assert ("audit_{}_hard_recall".format(judge) in r) == (judge != "bag")
    table = open(os.path.join(out, "results.md")).read()
    assert "violation precision" in table and "Total wall time" in table
    assert "#### The judges on the SFT policy's answers, against the world's truth" in table and "(the paper's, not ours)" in table
    for name in parts.JUDGE_NAMES.values():
        assert f"| {name}" in table
    assert res["lm_judge_meta"]["params"] > 0 and res["lm_judge_meta"]["config"]["steps"] == 6
    for v in variants + ["SFT start"]:
        assert f"| {v} |" in table
    with open(os.path.join(out, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert {r["variant"] for r in rows} == set(variants)
    assert all("reward/true" in r for r in rows if r["step"] > 0)
    # every run whose data has hard constraints asks its judge about canaries each step
    assert all(r["canary/n"] > 0 for r in rows if r["step"] > 0 and not r["variant"].startswith("soft-only"))
    # the main variants really ran on the quantized base with an adapter, the extra row with full fine-tuning
    # the attention stage: the start and every run, each constraint kind scored, the section and its figure
    for path in ["start_attention.json"] + [f"runs/{t}/attention.json" for t in res["attention"]["runs"]]:
        with open(os.path.join(out, path)) as f:
            att = json.load(f)
        assert set(att["groups"]) <= {"all", "seen", "unseen", "hard", "soft"} and "all" in att["groups"], path
        assert len(att["heads"]) == 4 and att["records"] + len(att["skipped"]) == 4 + 4 + 2, path
    assert len(res["attention"]["runs"]) == len(variants)
    start = res["attention"]["start"]["groups"]
    assert {"seen", "unseen", "hard", "soft"} <= set(start)  # the smoke's prompts have every kind
    assert "#### Attention to the constraint text" in table and "labelled as the paper's" in table
    assert "| change, unseen types |" in table and "Pearson r = " in table
    assert open(os.path.join(out, "attention.png"), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    for tag, four_bit in (("hard-only_full-FT-s0", False), ("hard-only-s0", True), ("refined-s0", True)):
        with open(os.path.join(out, "runs", tag, "config.json")) as f:
            cfg = json.load(f)
        assert cfg["load_in_4bit"] is four_bit and cfg["use_lora"] is four_bit


def test_runs_in_worker_processes_give_the_in_process_numbers(smoke, tmp_path):
    # a fresh cache: the LM judge trains in a second process beside the SFT model, then the runs train two at a
    # time in worker processes; every number equals the in-process pipeline's (the smoke fixture)
    out = str(tmp_path / "out")
    reproduce_cmd.main(["--smoke", "--out", out, "--cache", str(tmp_path / "cache"), "--threads=1", "--workers=2"])
    log = open(os.path.join(out, "log.txt")).read()
    assert "judge model: training in a second process" in log and "2 at a time, each in a process of its own" in log
    timing = ("wall_s", "train_s", "policy")
    runs = [json.load(open(os.path.join(d, "results.json")))["runs"] for d in (smoke[0], out)]
    assert [{k: v for k, v in r.items() if k not in timing} for r in runs[0]] == \
        [{k: v for k, v in r.items() if k not in timing} for r in runs[1]]
    assert len(runs[1]) == 7 and all(os.path.exists(os.path.join(out, "runs", parts_tag, "result.json"))
                                     for parts_tag in os.listdir(os.path.join(out, "runs")))


def test_resume_keeps_finished_runs_and_continues_an_interrupted_one(smoke, capsys):
    out, cache = smoke
    # an interruption after the last checkpoint and before the evaluation leaves no result.json
    run = os.path.join(out, "runs", "mixed-s0")
    os.remove(os.path.join(run, "result.json"))
    capsys.readouterr()
    reproduce_cmd.main(["--smoke", "--resume", "--out", out, "--cache", cache, "--threads=1"])
    log = open(os.path.join(out, "log.txt")).read()
    assert "hard-only-s0: finished earlier" in log
    assert "mixed-s0: finished earlier" not in log
    assert "SFT model: cached" in log and "judge: cached" in log
    assert os.path.exists(os.path.join(run, "result.json"))
    assert "mixed-s0: cannot resume" not in log
    # the attention stage: the start's and finished runs' read back, the re-evaluated run's scored again
    assert log.count("start: attention to constraints") == 1  # the log holds both invocations
    assert log.count("mixed-s0: attention to constraints") == 2 and log.count("hard-only-s0: attention") == 1
    assert f"resumed from {run}" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--fast"], "unknown option '--fast'"),
    (["--quick", "extra"], "unknown option 'extra'"),
    (["--out"], "option --out needs a value"),
    (["--threads=0"], "--threads needs a positive integer"),
    (["--workers", "two"], "--workers needs a positive integer"),
    (["--preset", "tiny", "--workers=2"], "--workers is for the miniature"),
])
def test_bad_options_are_refused(argv, message):
    with pytest.raises(SystemExit) as e:
        reproduce_cmd.main(argv)
    assert message in str(e.value) and "usage:" in str(e.value)


def test_incompatible_or_incomplete_sft_cache_is_rebuilt(tmp_path):
    cfg = sft.SFTConfig(steps=2, batch_size=4, hidden=32, intermediate=64, layers=1, vocab_size=300)
    msgs = []
    path = sft.build_or_load(cfg, str(tmp_path), progress=False, log=msgs.append)
    assert "training from scratch" in msgs[0]
    assert sft.build_or_load(cfg, str(tmp_path), progress=False, log=msgs.append) == path
    assert "cached" in msgs[-1]
    # a cache folder whose meta says it was built for something else is not reused
    meta = sft.load_meta(path)
    meta["key"] = "0" * 64
    with open(os.path.join(path, "meta.json"), "w") as f:
        json.dump(meta, f)
    msgs.clear()
    assert sft.build_or_load(cfg, str(tmp_path), progress=False, log=msgs.append) == path
    assert "rebuilding" in msgs[0] and sft.load_meta(path)["key"] != "0" * 64
    # an interrupted build (no meta.json) is not reused either
    os.remove(os.path.join(path, "meta.json"))
    msgs.clear()
    sft.build_or_load(cfg, str(tmp_path), progress=False, log=msgs.append)
    assert "rebuilding" in msgs[0]
    # a different config gets a different folder
    other = sft.build_or_load(sft.SFTConfig(**{**cfg.__dict__, "seed": 1}), str(tmp_path), progress=False,
                              log=msgs.append)
    assert other != path


# The numbers the embedded experiment ran with before it became the pipeline's miniature presets (README table),
# and since #27 the full run's LM judge.
BEFORE = {
    "miniature": parts.MiniatureConfig(lm_judge=parts.LMJudgeConfig(), reward_judge="pointwise",
                                       batched_arms=("soft-only", "mixed"), canaries=4, eval_judge=40),
    "miniature-quick": parts.MiniatureConfig(sft=sft.SFTConfig(steps=150), seeds=(0,), steps=15, pool_size=200,
                                             refine_candidates=200, eval_hard=80, eval_soft=60, eval_unseen=60,
                                             eval_samples=2, attention_prompts=8),
    "miniature-smoke": parts.MiniatureConfig(sft=sft.SFTConfig(steps=8, batch_size=16),
                                             judge=parts.JudgeConfig(n_records=200, epochs=1), seeds=(0,), steps=2,
                                             prompts_per_step=2, group_size=4, max_new_tokens=24, micro_batch_size=8,
                                             ckpt_every=1, pool_size=16, refine_candidates=16, pilot_samples=2,
                                             eval_hard=6, eval_soft=6, eval_unseen=6, eval_samples=2,
                                             attention_prompts=4,
                                             # the smoke also runs the LM judge's path (#27): reward, both modes, canaries
                                             lm_judge=parts.LMJudgeConfig(steps=6, batch_size=8, vocab_size=512,
                                                                          hidden=32, layers=1, intermediate=64),
                                             reward_judge="pointwise", batched_arms=("soft-only", "mixed"),
                                             canaries=4, eval_judge=4, parallel_runs=False),
}


@pytest.mark.parametrize("name", list(BEFORE))
def test_miniature_presets_carry_the_experiments_numbers(name):
    from dataclasses import replace

    from minirlvr.pipeline.presets import get

    assert parts.config_of(get(name)) == replace(BEFORE[name], preset=name)


def test_unknown_preset_and_changed_settings_on_resume_are_refused(smoke, tmp_path):
    with pytest.raises(SystemExit, match=r"unknown preset 'huge'; presets: miniature, miniature-quick"):
        reproduce_cmd.main(["--preset", "huge"])
    with pytest.raises(SystemExit, match="--quick goes with the miniature preset"):
        reproduce_cmd.main(["--preset", "tiny", "--quick"])
    out, cache = smoke
    # the smoke run's folder, resumed as the quick preset: other settings, named
    with pytest.raises(SystemExit, match=r"--resume: .*config.json was written with other settings; differing keys: .*"
                                         r"parts.eval_hard \(6 then, 80 now\)"):
        reproduce_cmd.main(["--quick", "--resume", "--out", out, "--cache", cache])


def test_the_attention_command_on_a_runs_adapter_gives_the_stages_numbers(smoke, tmp_path):
    """A reader reruns the analysis alone: `run.py attention` on the run's adapter and the records the stage wrote
    gives the numbers of the stage's attention.json (the same 4-bit load as the engine's, the same function)."""
    from minirlvr.commands import attention as attention_cmd

    out, _ = smoke
    run = os.path.join(out, "runs", "hard-only-s0")
    with open(os.path.join(run, "config.json")) as f:
        model = json.load(f)["model"]
    attention_cmd.main(["--model", model, "--adapter", os.path.join(run, "adapter"), "--data",
                        os.path.join(run, "attention_records.jsonl"), "--4bit", "--device", "cpu",
                        "--out", str(tmp_path)])
    with open(os.path.join(run, "attention.json")) as f:
        stage = json.load(f)
    with open(tmp_path / "scores.json") as f:
        cmd = json.load(f)["checkpoints"][0]
    assert cmd["groups"] == stage["groups"]
    flat = [x for row in cmd["score"] for x in row]
    assert sum(flat) / len(flat) == pytest.approx(stage["groups"]["all"]["score"], rel=1e-6)


def _refuse(token):
    raise ValueError(f"{token} is not JSON")


def test_nan_is_null_in_every_file_and_nan_again_on_resume(tmp_path, monkeypatch):
    """Strict JSON: a NaN metric (here the judge's recall, as when there is no violation to catch, and an attention
    group's score) is null in every .json / .jsonl the pipeline writes (jq, JavaScript and most libraries refuse a
    bare NaN), and --resume reads it back as NaN: the report of a resumed run is the first one's."""
    import math

    from minirlvr.evaluation import attention

    real_evaluate, real_stage = parts.MiniatureParts.evaluate, attention.stage_scores

    def evaluate(self, model, tokenizer, *args, **kwargs):
        return dict(real_evaluate(self, model, tokenizer, *args, **kwargs), judge_recall=math.nan)

    def stage_scores(*args, **kwargs):
        out = real_stage(*args, **kwargs)
        out["groups"]["seen"]["score"] = math.nan
        return out

    monkeypatch.setattr(parts.MiniatureParts, "evaluate", evaluate)
    monkeypatch.setattr(attention, "stage_scores", stage_scores)
    out = tmp_path / "out"
    argv = ["--smoke", "--out", str(out), "--cache", str(tmp_path / "cache"), "--threads", "1"]
    reproduce_cmd.main(argv)
    written = sorted(p for p in out.rglob("*") if p.suffix in (".json", ".jsonl"))
    assert len(written) > 20
    for path in written:
        text = path.read_text()
        for doc in text.splitlines() if path.suffix == ".jsonl" else [text]:
            json.loads(doc, parse_constant=_refuse)  # raises on NaN, Infinity, -Infinity
    first = json.loads((out / "results.json").read_text())
    assert first["start"]["judge_recall"] is None and all(r["judge_recall"] is None for r in first["runs"])
    assert first["attention"]["start"]["groups"]["seen"]["score"] is None
    table = (out / "results.md").read_text()

    # every stage finished: --resume reads all of it back (nothing is evaluated again) and reports the same
    monkeypatch.setattr(parts.MiniatureParts, "evaluate", lambda *a, **k: pytest.fail("evaluated again"))
    reproduce_cmd.main(argv + ["--resume"])
    again = json.loads((out / "results.json").read_text())
    assert {k: v for k, v in again.items() if k not in ("wall_s", "cpu_s", "machine")} == \
        {k: v for k, v in first.items() if k not in ("wall_s", "cpu_s", "machine")}

    def without_total(md):
        return [line for line in md.splitlines() if not line.startswith("Total wall time")]

    assert without_total((out / "results.md").read_text()) == without_total(table)
