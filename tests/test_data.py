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


# Files written with plain json, and why that is fine: no number in them, or not this change's to make
PLAIN_JSON_WRITERS = {
    "bench/judged.py": "a temporary file of (item, response) texts for its child process",
    "reward/sandbox_worker.py": "standard library only (it runs confined); its answers are a bool and a reason",
}


def test_json_files_are_written_strict():
    """Every JSON file the kit writes goes through data.to_json (NaN and infinities as null: strict JSON, which jq,
    JavaScript and most libraries need): no json.dump, and no json.dumps handed to write_atomic, write or
    writelines, outside the files listed above. Read from the source, as tests/test_layout.py reads imports."""
    import ast
    import pathlib

    def is_json(call, name):
        f = call.func
        return isinstance(f, ast.Attribute) and f.attr == name and isinstance(f.value, ast.Name) and f.value.id == "json"

    package = pathlib.Path(__file__).resolve().parent.parent / "minirlvr"
    found = set()
    for path in package.rglob("*.py"):
        rel = path.relative_to(package).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            dumped = name in ("write_atomic", "write", "writelines") and any(
                isinstance(sub, ast.Call) and is_json(sub, "dumps") for arg in node.args for sub in ast.walk(arg))
            if is_json(node, "dump") or dumped:
                found.add(f"{rel}:{node.lineno}")
    assert {f.split(":")[0] for f in found} <= set(PLAIN_JSON_WRITERS), sorted(found)
