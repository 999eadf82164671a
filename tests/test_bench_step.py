"""`python -m minirlvr.bench step`: the kit's GRPO step and TRL's GRPOTrainer on the same tiny model, equal work."""

import json
import os
import subprocess
import sys

import pytest

from minirlvr.bench import step as bench_step

from minirlvr.pipeline import plan
from minirlvr.engine.model import load_tokenizer


def test_prompts_are_exactly_prompt_len_tokens(tmp_path):
    args = bench_step.parse(["--shape", "tiny", "--prompt-len", "7", "--steps", "2"])
    args.folder = bench_step.build_model_folder("tiny", str(tmp_path))
    tok = load_tokenizer(args.folder)
    texts = bench_step.prompt_texts(args)
    assert len(texts) == args.B * args.steps and len(set(texts)) == len(texts)
    assert {len(tok(t, add_special_tokens=False).input_ids) for t in texts} == {7}
    assert tok.unk_token_id not in {i for t in texts for i in tok(t).input_ids}


def test_micro_batch_must_divide_the_rollouts():
    with pytest.raises(SystemExit):
        bench_step.parse(["--B", "3", "--G", "3", "--micro-batch", "2"])


def test_tiny_vs_trl_runs_both_sides_on_equal_work(tmp_path):
    """The tiny shape with an 8-token vocabulary: a random model emits EOS about once in 8 tokens, so every row
    runs to L tokens only if both sides really keep EOS from ending a row."""
    pytest.importorskip("trl")
    with open(plan.shape_config_path("tiny")) as f:
        config = {**json.load(f), "vocab_size": 8}
    shape = tmp_path / "tiny8.json"
    shape.write_text(json.dumps(config))
    out = tmp_path / "step.jsonl"
    argv = ["--shape", str(shape), "--vs", "trl", "--steps", "2", "--B", "2", "--G", "4", "--micro-batch", "4",
            "--prompt-len", "8", "--completion-len", "12", "--workdir", str(tmp_path), "--out", str(out)]
    res = subprocess.run([sys.executable, "-m", "minirlvr.bench", "step", *argv], capture_output=True, text=True,
                         cwd=str(tmp_path), env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "kit / trl: time per step" in res.stdout and "unequal work" not in res.stdout
    row = json.loads(out.read_text().splitlines()[-1])
    kit, trl = row["results"]["kit"], row["results"]["trl"]
    for side in (kit, trl):
        assert side["mean_completion_len"] == 12  # every row ran to L tokens on both sides
        assert len(side["step_s"]) == 2 and all(t > 0 for t in side["step_s"])
        assert 0 < side["sample_s"][1] < side["step_s"][1]
        assert side["peak_gb"] > 0.1
    assert row["ratios"]["time"] == pytest.approx(kit["sec_per_step"] / trl["sec_per_step"])
    assert row["ratios"]["memory"] == pytest.approx(kit["peak_gb"] / trl["peak_gb"])
