"""The training loop on tiny models: it learns (fp32 LoRA and 4-bit + LoRA), resumes exactly, and refuses bad input."""

import json
import math
import os
import sys

import pytest
import torch

from minirlvr.commands import train as train_cmd
from minirlvr.data import to_json
import minirlvr.train as train_mod
from minirlvr.engine.config import ConfigError, make_config, parse_args
from minirlvr.engine.model import ModelError, tiny_model, trainable_state, word_tokenizer
from minirlvr.reward.constraint import RewardError
from minirlvr.train import TrainError, train

WORDS = [f"w{i}" for i in range(20)] + ["x"]
RECORDS = [{"key": i, "prompt": " ".join(f"w{(3 * i + j) % 20}" for j in range(4))} for i in range(12)]


def x_fraction(records, completions):
    """The verifiable toy reward: fraction of completion words that are "x"."""
    r = [sum(w == "x" for w in c.split()) / max(1, len(c.split())) for c in completions]
    return r, {"x_frac": r}


def tiny(seed=0):
    tok = word_tokenizer(WORDS)
    return tiny_model(vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      init_std=0.1, seed=seed), tok


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    model, tok = tiny()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def cfg(tmp_path, name="run", **kw):
    base = dict(out_dir=str(tmp_path / name), steps=4, prompts_per_step=4, group_size=4, max_new_tokens=6,
                lr=1e-2, micro_batch_size=16, lora_r=4, lora_alpha=8, progress=False, log_every=0,
                rollouts_every=0, ckpt_every=0)
    base.update(kw)
    return make_config(**base)


def assert_learns(history):
    rewards = [h["reward"] for h in history if "reward" in h]
    start, end = sum(rewards[:3]) / 3, sum(rewards[-5:]) / 5
    assert end > 0.6 and end > start + 0.4, f"reward did not rise: {[round(r, 2) for r in rewards]}"


def test_learns_with_lora(tmp_path):
    model, tok = tiny()
    res = train(cfg(tmp_path, steps=30, group_size=8, max_new_tokens=8), x_fraction, records=RECORDS,
                model=model, tokenizer=tok)
    assert_learns(res.history)


def test_learns_with_4bit_lora(tmp_path, folder):
    res = train(cfg(tmp_path, model=folder, load_in_4bit=True, steps=30, group_size=8, max_new_tokens=8),
                x_fraction, records=RECORDS)
    import bitsandbytes as bnb

    assert any(isinstance(m, bnb.nn.Linear4bit) for m in res.model.modules())
    assert_learns(res.history)


def test_resume_is_exact(tmp_path, folder):
    common = dict(model=folder, lora_dropout=0.1, temperature=1.0, top_p=0.95, micro_batch_size=5,
                  warmup_steps=2, beta=0.01)
    straight = train(cfg(tmp_path, "straight", steps=4, **common), x_fraction, records=RECORDS)
    first = train(cfg(tmp_path, "split", steps=2, ckpt_every=2, **common), x_fraction, records=RECORDS)
    second = train(cfg(tmp_path, "split", steps=4, ckpt_every=2, resume=True, **common), x_fraction,
                   records=RECORDS)
    a, b = trainable_state(straight.model), trainable_state(second.model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], trainable_state(first.model)[k]) for k in a)  # the last 2 steps did train
    assert [h["step"] for h in second.history] == [1, 2, 3, 4]
    assert [h["reward"] for h in second.history] == [h["reward"] for h in straight.history]
    with open(os.path.join(second.run_dir, "metrics.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == [1, 2, 3, 4]


def test_resume_from_other_lora_shape_is_rejected(tmp_path, folder):
    train(cfg(tmp_path, model=folder, steps=1), x_fraction, records=RECORDS)
    with pytest.raises(ModelError, match="different model or LoRA shape"):
        train(cfg(tmp_path, model=folder, steps=2, lora_r=8, resume=True), x_fraction, records=RECORDS)


def test_non_empty_run_dir_is_not_overwritten(tmp_path):
    model, tok = tiny()
    res = train(cfg(tmp_path, steps=1), x_fraction, records=RECORDS, model=model, tokenizer=tok)
    before = open(os.path.join(res.run_dir, "metrics.jsonl")).read()
    with pytest.raises(TrainError, match="not empty"):
        train(cfg(tmp_path, steps=1), x_fraction, records=RECORDS, model=tiny()[0], tokenizer=tok)
    assert open(os.path.join(res.run_dir, "metrics.jsonl")).read() == before


def test_metrics_rollouts_and_on_step(tmp_path):
    model, tok = tiny()
    calls = []

    def on_step(step, m, t):
        calls.append(step)
        return {"eval_score": float(step)}

    res = train(cfg(tmp_path, steps=4, eval_every=3, rollouts_every=2, micro_batch_size=3), x_fraction,
                on_step=on_step, records=RECORDS, model=model, tokenizer=tok)
    assert calls == [0, 3, 4]
    rows = [json.loads(line) for line in open(os.path.join(res.run_dir, "metrics.jsonl"))]
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4] == [h["step"] for h in res.history]
    assert [r.get("eval_score") for r in rows] == [0.0, None, None, 3.0, 4.0]
    for key in ("reward", "reward/x_frac", "zero_var", "kl", "entropy", "clip_frac", "len", "no_eos",
                "sample_tok_s", "train_tok_s", "peak_mem_gb"):
        assert all(key in r for r in rows[1:]), key
    assert 0 < rows[1]["entropy"] <= torch.log(torch.tensor(float(len(tok)))).item() + 1e-4
    rollouts = [json.loads(line) for line in open(os.path.join(res.run_dir, "rollouts.jsonl"))]
    assert {r["step"] for r in rollouts} == {2, 4} and "x_frac" in rollouts[0]["parts"]
    assert json.load(open(os.path.join(res.run_dir, "config.json")))["eval_every"] == 3


def test_loss_independent_of_micro_batch_split(tmp_path):
    # compared before AdamW: its first step is nearly sign(grad), which would amplify rounding of tiny grads
    runs = []
    for mbs in (16, 5):
        model, tok = tiny()
        res = train(cfg(tmp_path, f"mbs{mbs}", steps=2, micro_batch_size=mbs, beta=0.1), x_fraction,
                    records=RECORDS, model=model, tokenizer=tok)
        runs.append([(h["loss"], h["grad_norm"], h["kl"]) for h in res.history])
    assert runs[0][1][2] > 0  # the second step sees a moved adapter, so the KL part is exercised
    torch.testing.assert_close(torch.tensor(runs[0]), torch.tensor(runs[1]), rtol=1e-5, atol=1e-7)


def test_non_finite_loss_skips_update_and_stops(tmp_path, monkeypatch):
    real = train_mod.grpo_loss

    def nan_loss(*args, **kwargs):
        loss, stats = real(*args, **kwargs)
        return loss * float("nan"), stats

    monkeypatch.setattr(train_mod, "grpo_loss", nan_loss)
    model, tok = tiny()
    with pytest.raises(TrainError, match="2 steps in a row had a non-finite loss"):
        train(cfg(tmp_path, steps=5, max_bad_steps=2), x_fraction, records=RECORDS, model=model, tokenizer=tok)
    rows = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert [r["skipped"] for r in rows] == [True, True]
    assert all(torch.all(p == 0) for n, p in model.named_parameters() if "lora_B" in n)  # no update happened


@pytest.mark.parametrize("bad,match", [
    (lambda recs, comps: ([0.0] * (len(comps) - 1), {}), r"bad_reward.*shape \(15,\), expected \(16,\)"),
    (lambda recs, comps: ([float("nan")] + [0.0] * (len(comps) - 1), {}), "bad_reward.*NaN"),
    (lambda recs, comps: [0.0] * len(comps), r"bad_reward must return \(rewards, parts\)"),
])
def test_bad_reward_function(tmp_path, bad, match):
    bad.__qualname__ = "bad_reward"
    model, tok = tiny()
    with pytest.raises(RewardError, match=match):
        train(cfg(tmp_path, steps=1), bad, records=RECORDS, model=model, tokenizer=tok)


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown config key --lr_rate"):
        parse_args(["--lr_rate=1e-3"])
    with pytest.raises(ConfigError, match="--steps: expected int, got 'ten'"):
        parse_args(["--steps=ten"])
    with pytest.raises(ConfigError, match="--use_lora: expected true/false"):
        parse_args(["--use_lora=maybe"])
    with pytest.raises(ConfigError, match="unknown preset"):
        train_cmd.parse_args(["--preset=huge"])
    with pytest.raises(ConfigError, match="expected --key=value"):
        parse_args(["steps=3"])
    with pytest.raises(ConfigError, match="'steps': expected int, got str"):
        make_config(steps="3")
    with pytest.raises(ConfigError, match="loss_agg"):
        parse_args(["--loss_agg=mean"])
    c = train_cmd.parse_args(["--preset=cpu-smoke", "--steps=3", "--lr=1", "--stop_strings=a,b",
                              "--scale_rewards=false"])
    assert (c.steps, c.lr, c.stop_strings, c.scale_rewards, c.group_size) == (3, 1.0, ("a", "b"), False, 8)


def test_main_reports_errors_cleanly(tmp_path):
    with pytest.raises(SystemExit, match="error: unknown config key --bogus"):
        train_cmd.main(["--bogus=1"])
    with pytest.raises(SystemExit, match="'data': no such file 'nope.jsonl'"):
        train_cmd.main([f"--model={tmp_path}", f"--out_dir={tmp_path / 'run'}", "--data=nope.jsonl"])
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "w1 w2"}\n{"prompt": 3}\n')
    with pytest.raises(SystemExit, match="train.jsonl:2: field 'prompt' must be a string"):
        train_cmd.main([f"--model={tmp_path}", f"--out_dir={tmp_path / 'run'}", f"--data={data}"])
    data.write_text('{"prompt": "w1 w2", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}\n')
    with pytest.raises(SystemExit, match="has no weights"):
        train_cmd.main([f"--model={tmp_path}", f"--out_dir={tmp_path / 'run'}", f"--data={data}"])


def test_hard_reward_uses_the_verifiers():
    from minirlvr.reward.constraint import call_reward, hard_reward

    a = {"prompt": "p", "instruction_id_list": ["keywords:existence", "change_case:english_lowercase"],
         "kwargs": [{"keywords": ["tea"]}, {}]}
    b = {"prompt": "q", "instruction_id_list": ["keywords:existence"], "kwargs": [{"keywords": ["cat"]}]}
    lower = "i really like to drink tea in the morning with my good friends."
    texts = [lower, lower.upper(), "The cat sat on the mat all day long.", "No animals here at all."]
    rewards, parts = call_reward(hard_reward, [a, a, b, b], texts)
    assert rewards.tolist() == [1.0, 0.5, 1.0, 0.0]  # mean over the record's constraints
    assert parts["hard:keywords:existence"] == [1.0, 1.0, 1.0, 0.0]  # IFEval matches keywords case-insensitively
    lc = parts["hard:change_case:english_lowercase"]
    assert lc[:2] == [1.0, 0.0] and all(x != x for x in lc[2:])  # NaN where the record lacks the constraint


def test_gradient_checkpointing_same_numbers_and_ppo_epochs(tmp_path):
    runs = []
    for gc in (False, True):
        model, tok = tiny()
        res = train(cfg(tmp_path, f"gc{gc}", steps=2, gradient_checkpointing=gc), x_fraction, records=RECORDS,
                    model=model, tokenizer=tok)
        runs.append([(h["loss"], h["grad_norm"]) for h in res.history])
        assert any(getattr(m, "gradient_checkpointing", False) for m in res.model.modules()) == gc
    torch.testing.assert_close(torch.tensor(runs[0]), torch.tensor(runs[1]), rtol=1e-5, atol=1e-7)
    # two PPO-style epochs per batch: the second is off-policy, so the clip engages at a large learning rate
    model, tok = tiny()
    res = train(cfg(tmp_path, "ppo", steps=2, epochs_per_step=2, lr=0.05), x_fraction, records=RECORDS,
                model=model, tokenizer=tok)
    assert all(h["clip_frac"] > 0 for h in res.history)


def test_full_fine_tuning_uses_a_frozen_reference_copy(tmp_path):
    model, tok = tiny()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    res = train(cfg(tmp_path, steps=2, use_lora=False, beta=0.1, lr=1e-3), x_fraction, records=RECORDS,
                model=model, tokenizer=tok)
    assert res.history[0]["kl"] == 0.0 and res.history[1]["kl"] > 0  # reference = the weights at start
    after = dict(res.model.named_parameters())
    assert all(after[n].requires_grad for n in before)
    assert not torch.equal(after["lm_head.weight"], before["lm_head.weight"])  # the head trains too


def test_chat_template_and_data_file_with_default_reward(tmp_path, folder):
    from minirlvr.train import encode_prompt

    tok = word_tokenizer(WORDS + ["user:", "assistant:"])
    assert encode_prompt({"prompt": "w1 w2"}, tok, True) == tok("w1 w2").input_ids  # no template: plain text
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }} {% endfor %}"
                         "{% if add_generation_prompt %}assistant: {% endif %}")
    ids = encode_prompt({"messages": [{"role": "user", "content": "w3 w4"}]}, tok, True)
    assert tok.convert_ids_to_tokens(ids) == ["user:", "w3", "w4", "assistant:"]
    assert encode_prompt({"prompt": "w3 w4"}, tok, True) == ids  # a plain prompt becomes one user message
    assert encode_prompt({"prompt": "w3 w4"}, tok, False) == tok("w3 w4").input_ids

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"key": i, "prompt": "w1 w2", "instruction_id_list": ["keywords:existence"],
                                        "kwargs": [{"keywords": ["x"]}]}) + "\n" for i in range(4)))
    res = train(cfg(tmp_path, model=folder, data=str(data), steps=1))  # default reward: the verifier set
    assert "reward/hard:keywords:existence" in res.history[0]


@pytest.mark.parametrize("kb", [0, 256])
def test_cpu_mmap_threshold_is_pinned_as_configured(tmp_path, monkeypatch, kb):
    """On a CPU, train() pins glibc's mmap threshold at cpu_mmap_threshold_kb (0: left alone), before sampling."""
    calls = []
    real_generate = train_mod.generate
    monkeypatch.setattr(train_mod, "return_freed_memory", lambda nbytes: calls.append(("pin", nbytes)))
    monkeypatch.setattr(train_mod, "generate", lambda *a, **k: calls.append(("generate",)) or real_generate(*a, **k))
    model, tok = tiny()
    train(cfg(tmp_path, steps=1, cpu_mmap_threshold_kb=kb), x_fraction, records=RECORDS, model=model, tokenizer=tok)
    assert calls[0] == (("pin", kb * 1024) if kb else ("generate",))
    with pytest.raises(ConfigError, match="cpu_mmap_threshold_kb"):
        make_config(cpu_mmap_threshold_kb=-1)


def test_train_takes_key_value_and_dashes_and_names_the_closest_key():
    a = train_cmd.parse_args(["--preset", "cpu-smoke", "--steps", "3", "--max-new-tokens=12", "--lr", "0.5"])
    b = train_cmd.parse_args(["--preset=cpu-smoke", "--steps=3", "--max_new_tokens=12", "--lr=0.5"])
    assert a == b and (a.steps, a.max_new_tokens, a.lr) == (3, 12, 0.5)
    with pytest.raises(ConfigError, match=r"unknown config key --max_new_token \(did you mean --max_new_tokens\?\)"):
        parse_args(["--max-new-token=8"])
    with pytest.raises(ConfigError, match="--steps needs a value"):
        parse_args(["--steps", "--lr=1"])


def test_values_that_cannot_train_are_refused_before_anything_is_written(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="group_size' must be >= 2"):
        parse_args(["--group_size=1"])
    with pytest.raises(ConfigError, match="'lr' must be > 0"):
        parse_args(["--lr=-1"])
    soft_only = tmp_path / "soft.jsonl"
    soft_only.write_text(json.dumps({"prompt": "Write.", "soft_constraints": ["Be warm."]}) + "\n")
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match="--reward=hard: no record .* has hard constraints"):
        train_cmd.main([f"--data={soft_only}", f"--out_dir={out}", "--model=nowhere"])
    with pytest.raises(SystemExit, match="holds no checkpoint to resume from"):
        train_cmd.main([f"--data={soft_only}", f"--out_dir={out}", "--reward=soft", "--resume=true"])
    with pytest.raises(SystemExit):
        train_cmd.main([f"--data={soft_only}", f"--out_dir={out}", "--reward=soft", f"--model={tmp_path / 'none'}"])
    assert not out.exists()  # no empty run folder left behind by a run that failed at start


def test_ctrl_c_in_train_names_the_command_that_resumes(tmp_path, monkeypatch):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(RECORDS[0]) + "\n")

    def interrupted(cfg):
        raise KeyboardInterrupt
    monkeypatch.setattr("minirlvr.train.train", interrupted)  # the command imports it when it runs
    with pytest.raises(SystemExit) as e:
        train_cmd.main([f"--data={data}", f"--out_dir={tmp_path / 'run'}", "--steps", "3"])
    assert "interrupted" in str(e.value) and "--resume=true" in str(e.value) and "--steps 3" in str(e.value)


def test_a_cuda_device_without_cuda_is_a_clear_error():
    import torch

    from minirlvr.engine.model import ModelError, pick_device

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible here")
    with pytest.raises(ModelError, match="use --device cpu"):
        pick_device("cuda")
    with pytest.raises(ModelError, match="is not a device"):
        pick_device("gpu0")


def test_no_nan_in_a_written_json_file_and_resume_sees_nan_again(tmp_path):
    """A part that is NaN where it does not apply (here on every other row) is written as null in metrics.jsonl
    (strict JSON), and a resumed run's history holds NaN again, as the straight run's does."""
    def half_nan(records, completions):
        r, parts = x_fraction(records, completions)
        return r, {**parts, "sometimes": [math.nan if k % 2 else 1.0 for k in range(len(r))],
                   "never": [math.nan] * len(r)}  # its step mean is NaN

    model, tok = tiny()
    res = train(cfg(tmp_path, steps=2, ckpt_every=1), half_nan, records=RECORDS, model=model, tokenizer=tok)
    text = open(os.path.join(res.run_dir, "metrics.jsonl")).read()
    assert "NaN" not in text and "Infinity" not in text

    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    rows = [json.loads(line, parse_constant=refuse) for line in text.splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all("reward/sometimes" in r for r in rows)
    from minirlvr.engine.checkpoint import truncate_log

    back = truncate_log(os.path.join(res.run_dir, "metrics.jsonl"), 2)
    assert back[0]["reward/sometimes"] == 1.0  # nanmean over rows: the NaN rows are left out
    assert rows[0]["reward/never"] is None and math.isnan(back[0]["reward/never"])
    assert json.loads(to_json({"x": math.nan})) == {"x": None}


def test_train_presets_are_the_rows_reproduce_and_plan_read():
    """One preset table (issue #25): `train --preset NAME` gives the training values of the row reproduce and plan
    read, and a reproduce run of that row trains with them (plus its own folder, seed, reward and checkpoints)."""
    from minirlvr.engine import config
    from minirlvr.pipeline import presets
    from minirlvr.pipeline.hf_parts import HFParts

    assert not hasattr(config, "TRAIN_PRESETS")  # no second table
    c, p = train_cmd.parse_args(["--preset", "qwen2.5-7b"]), presets.get("qwen2.5-7b")
    assert (c.model, c.load_in_4bit, c.use_lora, c.lora_r, c.lora_alpha, c.gradient_checkpointing) == \
        (p.model, True, True, p.lora_r, 2 * p.lora_r, True)
    assert (c.prompts_per_step, c.group_size, c.max_new_tokens, c.lr, c.beta, c.steps, c.micro_batch_size,
            c.temperature, c.judge_batch_rows, c.canaries) == \
        (4, 8, 1024, p.lr, p.beta, p.steps, 2, p.temperature, 12, p.canaries)
    run_keys = {"model", "out_dir", "seed", "reward", "ckpt_every", "keep_ckpts", "log_every", "rollouts_every",
                "resume"}
    for name in train_cmd.train_presets():
        parts = HFParts.__new__(HFParts)  # train_config reads only the preset and the start folder
        parts.p, parts.start = presets.get(name), "start"
        run = config.to_dict(parts.train_config("mixed", 0, "runs/x", False))
        alone = config.to_dict(train_cmd.parse_args(["--preset", name]))
        assert {k for k in run if run[k] != alone[k]} <= run_keys, name
    # every name means one thing: train's own `tiny` of before is now cpu-smoke (with its values), and `tiny`, the
    # pipeline's tiny random model, is an error that says so; rows whose model the pipeline builds are reproduce's
    old_tiny = train_cmd.parse_args(["--preset=cpu-smoke", "--model=m"])
    assert (old_tiny.steps, old_tiny.prompts_per_step, old_tiny.group_size, old_tiny.max_new_tokens, old_tiny.lr,
            old_tiny.micro_batch_size, old_tiny.lora_r, old_tiny.load_in_4bit) == (20, 4, 8, 16, 3e-3, 32, 8, False)
    with pytest.raises(ConfigError, match="is now --preset=cpu-smoke"):
        train_cmd.parse_args(["--preset=tiny"])
    with pytest.raises(SystemExit, match="reproduce --preset miniature"):
        train_cmd.main(["--preset=miniature"])
    gpu = train_cmd.parse_args(["--preset=gpu", "--model=m"])
    assert (gpu.load_in_4bit, gpu.gradient_checkpointing, gpu.lora_r, gpu.max_new_tokens) == (True, True, 16, 1024)
    assert set(train_cmd.train_presets()) | {"tiny", "miniature", "miniature-quick", "miniature-smoke"} == \
        set(presets.PRESETS)


def test_threads_key_sets_torch_threads_and_zero_leaves_the_callers(tmp_path):
    """train(cfg) with threads=N uses N torch threads; threads=0 (the default, what a pipeline's runs get) leaves
    the caller's setting, so `reproduce` keeps the threads it chose for all its runs."""
    before = torch.get_num_threads()
    seen = []
    try:
        for n, preset in ((0, 2), (1, 2)):
            torch.set_num_threads(preset)
            model, tok = tiny()
            train(cfg(tmp_path, f"t{n}", steps=1, threads=n), x_fraction, records=RECORDS, model=model, tokenizer=tok,
                  on_step=lambda step, m, t: seen.append(torch.get_num_threads()))
        assert seen == [2, 2, 1, 1]  # on_step runs at step 0 and at the end
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="'threads' must be >= 0"):
        make_config(threads=-1)


def metrics_rows(run_dir):
    from minirlvr.data import nan_for_null

    return [nan_for_null(json.loads(line)) for line in open(os.path.join(run_dir, "metrics.jsonl"))]


def numbers(row):
    """A metrics row's numbers as a tracker receives them (bools as 0/1), without the step."""
    return {k: float(v) for k, v in row.items() if k != "step" and isinstance(v, (int, float))}


def same(a, b):
    return a == b or (math.isnan(a) and math.isnan(b))


def test_report_to_tensorboard_holds_the_metrics_of_metrics_jsonl(tmp_path, folder):
    """--report_to=tensorboard: <out_dir>/tensorboard holds, read back with TensorBoard's EventAccumulator, one scalar
    per metric and step equal (as float32) to metrics.jsonl's, step 0's evaluation included; a resumed run's re-run
    steps replace the old ones there as in metrics.jsonl."""
    pytest.importorskip("tensorboard")
    import numpy as np
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    common = dict(model=folder, report_to="tensorboard", ckpt_every=2, keep_ckpts=3)
    first = train(cfg(tmp_path, steps=3, **common), x_fraction, records=RECORDS,
                  on_step=lambda step, m, t: {"eval_score": float(step)})
    # as if killed after step 3 was logged but before its checkpoint: the resume goes on from step 2
    import shutil
    shutil.rmtree(os.path.join(first.run_dir, "checkpoints", "step-000003"))
    train(cfg(tmp_path, steps=4, resume=True, **common), x_fraction, records=RECORDS)
    rows = metrics_rows(first.run_dir)
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    events = EventAccumulator(os.path.join(first.run_dir, "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    want = {}
    for r in rows:
        for name, value in numbers(r).items():
            want.setdefault(name, []).append((r["step"], float(np.float32(value))))
    assert set(events.Tags()["scalars"]) == set(want) and "reward" in want and "eval_score" in want
    for name, series in want.items():
        got = [(e.step, e.value) for e in events.Scalars(name)]
        assert [s for s, _ in got] == [s for s, _ in series], name  # no step twice after the resume
        assert all(same(a, b) for (_, a), (_, b) in zip(got, series)), name


def test_report_to_wandb_logs_every_row_and_finishes(tmp_path, monkeypatch):
    """--report_to=wandb with WANDB_MODE=offline: init once (project, the run's name from out_dir, its folder and
    config), one log per metrics.jsonl row with its numbers at its step, finish at the end. A fake `wandb` module
    records the calls (the real one is not needed to test what the kit sends)."""
    import types

    calls = []
    fake = types.ModuleType("wandb")
    fake.init = lambda **kw: calls.append(("init", kw))
    fake.log = lambda data, step=None: calls.append(("log", step, data))
    fake.finish = lambda: calls.append(("finish",))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_MODE", "offline")
    model, tok = tiny()
    res = train(cfg(tmp_path, "wb", steps=2, report_to="wandb"), x_fraction, records=RECORDS, model=model,
                tokenizer=tok)
    assert [c[0] for c in calls] == ["init", "log", "log", "finish"]
    init = calls[0][1]
    assert init["name"] == str(tmp_path / "wb") and init["dir"] == res.run_dir and init["project"] == "minirlvr"
    assert init["config"]["report_to"] == "wandb" and init["config"]["steps"] == 2
    rows = metrics_rows(res.run_dir)
    for (_, step, data), row in zip(calls[1:3], rows):
        assert step == row["step"] and data.keys() == numbers(row).keys()
        assert all(same(data[k], v) for k, v in numbers(row).items())


def test_report_to_without_its_package_is_an_error_at_parse_time(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    with pytest.raises(SystemExit, match=r"--report-to wandb needs the wandb package.*pip install wandb"):
        train_cmd.main(["--report-to", "wandb", "--model=m", "--data=d.jsonl"])
    from minirlvr.commands import reproduce as reproduce_cmd

    with pytest.raises(SystemExit, match=r"--report-to wandb needs the wandb package.*pip install wandb"):
        reproduce_cmd.main(["--preset", "tiny", "--report-to", "wandb"])
    with pytest.raises(SystemExit, match="--report-to takes one of none, tensorboard, wandb"):
        reproduce_cmd.main(["--preset", "tiny", "--report-to", "mlflow"])
    with pytest.raises(ConfigError, match="'report_to' must be one of"):
        train_cmd.parse_args(["--report-to=tensorbored"])
    assert train_cmd.parse_args([]).report_to == "none"


def test_a_run_starts_again_or_resumes_from_its_saved_config(tmp_path, folder):
    """`train --config RUN/config.json`: the saved config is the run's whole command line (it reads back equal), so
    the same run starts again elsewhere with the same numbers, or goes on from its checkpoint with --resume=true;
    later --key=value still override it. A bad file names itself and the key."""
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"key": i, "prompt": f"w{i} w{i + 1}", "instruction_id_list":
                                        ["keywords:existence"], "kwargs": [{"keywords": ["x"]}]}) + "\n"
                            for i in range(8)))
    first = str(tmp_path / "first")
    argv = [f"--model={folder}", f"--data={data}", f"--out_dir={first}", "--steps=2", "--prompts-per-step=4",
            "--group-size=4", "--max-new-tokens=6", "--lr=1e-2", "--micro-batch-size=16", "--lora-r=4",
            "--lora-alpha=8", "--progress=false", "--log-every=0", "--rollouts-every=0", "--ckpt-every=2",
            "--threads=1"]
    train_cmd.main(argv)
    saved = os.path.join(first, "config.json")
    assert train_cmd.parse_args(["--config", saved]) == train_cmd.parse_args(argv)

    def numbers_of(run):
        keys = ("step", "reward", "loss", "kl", "grad_norm", "len")
        return [{k: r.get(k) for k in keys} for r in metrics_rows(run)]

    again = str(tmp_path / "again")
    train_cmd.main(["--config", saved, "--out_dir", again])
    assert numbers_of(again) == numbers_of(first) and len(numbers_of(first)) == 2
    train_cmd.main([f"--config={saved}", "--resume=true", "--steps=3"])
    assert [r["step"] for r in numbers_of(first)] == [1, 2, 3]
    assert json.load(open(os.path.join(first, "config.resume-2.json")))["steps"] == 3

    with pytest.raises(SystemExit, match="--config: cannot read"):
        train_cmd.main(["--config", str(tmp_path / "none.json")])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.load(open(saved)), "lr_rate": 1.0}))
    with pytest.raises(SystemExit, match=f"--config: {bad}: unknown config key 'lr_rate'"):
        train_cmd.main(["--config", str(bad)])
    bad.write_text(json.dumps({**json.load(open(saved)), "steps": "many"}))
    with pytest.raises(SystemExit, match=f"--config: {bad}: config key 'steps': expected int"):
        train_cmd.main(["--config", str(bad)])
    with pytest.raises(SystemExit, match="--preset and --config exclude each other"):
        train_cmd.main(["--config", saved, "--preset=gpu"])
