"""`python -m minirlvr.bench judged` runs its data parts end to end (no timing is asserted): the CFBench part
reproduces every released judge_metric, the FollowBench part times the kit alone without --official, and the
hostile texts are 1 MB each."""

import os
from pathlib import Path

import pytest
from shared_data import SHARED as SHARED_DATA

from minirlvr.bench import judged as bench_judged

# MINIRLVR_SHARED_DATA: the shared data folder when it is not beside the repository (e.g. a worktree)
DATA = Path(os.environ.get("MINIRLVR_SHARED_DATA", SHARED_DATA))


@pytest.mark.skipif(not (DATA / "followbench" / "data").is_dir() or not (DATA / "cfbench" / "judge").is_dir(),
                    reason=f"FollowBench / CFBench data not found in {DATA} (the shared data folder beside the "
                           f"repository)")
def test_data_parts_run(capsys):
    bench_judged.main(["--parts", "followbench,cfbench", "--repeat", "1", "--followbench",
                       str(DATA / "followbench" / "data"), "--cfbench", str(DATA / "cfbench" / "judge")])
    out = capsys.readouterr().out
    assert "60 of 60 equal to the released judge_metric" in out
    assert "8400 (item, response) pairs" in out  # 350 rule items x 24 responses
    assert "official   not run" in out


def test_hostile_texts_are_one_megabyte():
    texts = bench_judged.hostile_texts()
    assert len(texts) >= 10 and all(len(t) >= bench_judged.MB for t in texts.values())
