"""A real two-process TRL GRPO run on the CPU with the kit's data and reward: scripts/trl_trial.py under
`python -m torch.distributed.run --standalone --nproc_per_node=2`, one thread per process, on a tiny random Qwen2
built here and records from the kit's data builder. Checked from the script's records of every reward call: the
trainer saw two processes, both scored completions in different processes on different rows, every reward is the
kit's reward on the raw record, and TRL's logged reward mean is the mean over both ranks.

The script runs from a temporary folder outside the checkout (a script beside the checkout's kernels/ would import
it instead of Hugging Face's `kernels`)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("trl", reason="trl is not installed (pip install -e '.[test]' or '.[trl]')")
torch = pytest.importorskip("torch")

from minirlvr.reward import constraint as reward  # noqa: E402
from minirlvr.cli import main as cli  # noqa: E402
from minirlvr.data import prompt_text, read_records  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "trl_trial.py")
# Ids whose outcome on a random model's text varies (lengths, commas, capitals), so the rewards are not constant.
HARD_IDS = ("change_case:capital_word_frequency,length_constraints:number_words,punctuation:no_comma,"
            "change_case:english_lowercase,length_constraints:word_count_range,"
            "detectable_format:number_highlighted_sections")
STEPS, BATCH, G = 3, 4, 2  # each rank scores 2 prompts per call, G completions each


def build(tmp):
    """The kit's data (data build) and a tiny random Qwen2 with a byte-level tokenizer trained on its prompts."""
    from minirlvr.engine.tokenizer import train_tokenizer
    from minirlvr.engine.model import tiny_model

    cli(["data", "build", "--out", str(tmp / "data"), "--n", "8", "--seed", "0", "--max-hard", "2",
         "--hard-ids", HARD_IDS])
    tok = train_tokenizer([prompt_text(r) for r in read_records(str(tmp / "data" / "hard_only.jsonl"))],
                          vocab_size=320)
    tiny_model(vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
               init_std=0.1).save_pretrained(tmp / "model")
    tok.save_pretrained(tmp / "model")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trl-two-process")
    build(tmp)
    shutil.copy(SCRIPT, tmp / "trl_trial.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "trl_trial.py",
           "--model", "model", "--data", "data/hard_only.jsonl", "--out", "out", "--steps", str(STEPS),
           "--batch", str(BATCH), "--generations", str(G), "--processes", "2"]
    done = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    calls = {}
    for rank in (0, 1):
        path = tmp / "out" / f"calls.rank{rank}.jsonl"
        assert path.exists(), f"rank {rank} never called the reward; launcher output:\n{done.stderr[-3000:]}"
        calls[rank] = [json.loads(line) for line in path.read_text().splitlines()]
    with open(tmp / "out" / "log_history.json") as f:
        log = json.load(f)
    with open(tmp / "data" / "hard_only.jsonl") as f:
        raw = {r["key"]: r for r in map(json.loads, f)}
    return calls, log, raw


def test_two_processes_score_different_rows(run):
    calls, _, _ = run
    for rank, rank_calls in calls.items():
        assert len(rank_calls) == STEPS, (rank, len(rank_calls))
        assert {(c["rank"], c["world_size"]) for c in rank_calls} == {(rank, 2)}  # the trainer saw 2 processes
        assert {c["threads"] for c in rank_calls} == {1}  # OMP_NUM_THREADS=1 reached the process
        assert all(len(c["rewards"]) == BATCH for c in rank_calls)
    assert calls[0][0]["pid"] != calls[1][0]["pid"]
    for step in range(STEPS):  # each rank scores its own share of the batch, not a copy of the other's
        assert set(calls[0][step]["keys"]).isdisjoint(calls[1][step]["keys"]), step


def test_every_reward_is_the_kits_on_the_raw_record(run):
    calls, _, raw = run
    kit = reward.constraint_reward("hard", "mean")
    seen = []
    for rank_calls in calls.values():
        for c in rank_calls:
            for key, prompt, text, got in zip(c["keys"], c["prompts"], c["completions"], c["rewards"]):
                record = raw[key]
                assert prompt == [{"role": "user", "content": record["prompt"]}], key
                assert got == kit([record], [text])[0][0], (key, text)
                seen.append(got)
    assert len(set(seen)) >= 2, f"every reward was {seen[0]}: the check could not tell a constant reward apart"


def test_trl_logs_the_mean_over_both_ranks(run):
    calls, log, _ = run
    name = "rewards/minirlvr_hard_mean/mean"
    logged = [entry[name] for entry in log if name in entry]
    assert len(logged) == STEPS, log
    for step, mean in enumerate(logged):
        both = calls[0][step]["rewards"] + calls[1][step]["rewards"]  # TRL gathers rank 0's rows, then rank 1's
        assert mean == torch.tensor(both, dtype=torch.float32).nanmean().item(), (step, mean, both)
    # Somewhere the ranks' own means differ, so logging one rank's mean alone would fail the check above.
    assert any(sum(calls[0][s]["rewards"]) != sum(calls[1][s]["rewards"]) for s in range(STEPS))
