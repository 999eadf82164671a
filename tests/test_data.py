"""The record format's file helpers."""

import os

import pytest

from minirlvr.data import DataError, read_records, write_atomic


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic(str(tmp_path / "a.txt"), "x")
        with open(tmp_path / "b.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "a.txt").st_mode & 0o777 == os.stat(tmp_path / "b.txt").st_mode & 0o777 == 0o644


def test_a_line_that_is_not_utf8_names_file_line_and_column(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"prompt": "tea"}\n' + '{"prompt": "café"}\n'.encode("latin-1"))
    with pytest.raises(DataError) as e:
        read_records(str(path))
    assert f"{path}:2:" in str(e.value) and "not UTF-8" in str(e.value) and "0xe9" in str(e.value)
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))  # a PNG header: not text at all
    with pytest.raises(DataError, match=r"binary.jsonl:1: not UTF-8"):
        read_records(str(binary))
