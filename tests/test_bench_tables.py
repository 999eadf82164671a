"""A benchmark's table carries its numbers only: no library warning lands in it (transformers once warned there
about a sampling flag passed to greedy `generate`)."""

import subprocess
import sys


def test_bench_sampler_prints_no_library_warning(tmp_path):
    out = subprocess.run([sys.executable, "-m", "minirlvr.bench", "sampler", "--hidden", "32", "--layers", "1",
                          "--vocab", "64", "--batch", "2", "--group", "2", "--prompt_len", "8", "--new_tokens", "4",
                          "--repeats", "1", "--threads", "1"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    assert "tok/s" in out.stdout
    assert "warn" not in text.lower() and "[transformers]" not in text, text
