"""The kit's reward in Ray actors equals local scoring (scripts/ray_reward_check.py, run from a temporary folder):
every score, in as many actor processes as asked, none of them this one. Skipped without ray (not in the test
extra: pip install -e '.[ray]')."""

import os
import re
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[ray]')")

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "ray_reward_check.py")


def test_ray_actors_score_as_this_process(tmp_path):
    shutil.copy(SCRIPT, tmp_path / "ray_reward_check.py")
    done = subprocess.run([sys.executable, "ray_reward_check.py", "--out", "data", "--n", "16", "--actors", "2"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    found = re.search(r"(\d+) completions over (\d+) actor processes .*; (\d+) of (\d+) scores equal to local "
                      r"scoring; (\d+) distinct values", done.stdout)
    assert found, done.stdout[-2000:] + done.stderr[-4000:]
    n, actors, same, total, distinct = map(int, found.groups())
    assert (n, actors, same, total) == (16 * 5, 2, 16 * 5, 16 * 5) and distinct >= 3, found.group(0)
    assert done.returncode == 0, done.stderr[-4000:]
