"""The record format's file helpers."""

import os

from minirlvr.data import write_atomic


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic(str(tmp_path / "a.txt"), "x")
        with open(tmp_path / "b.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "a.txt").st_mode & 0o777 == os.stat(tmp_path / "b.txt").st_mode & 0o777 == 0o644
