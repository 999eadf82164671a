"""Reading and writing the kit's one record format (see README: "The data that flows").

A record is IFEval's format plus optional fields:
    {"key", "prompt" | "messages", "instruction_id_list", "kwargs", "soft_constraints", "source"}
This file only parses and validates shapes; what an instruction id means is the verifiers' business.
Every error names the file, the line and the field, and nothing is ever silently dropped.
"""

import json
import math
import os
import tempfile


class DataError(ValueError):
    """A malformed data file: the message names the file, the line and the field."""


def iter_jsonl(path):
    """(line number, JSON object) for each non-blank line of a JSONL file; anything malformed raises."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                                f"save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row


def read_jsonl(path):
    """All JSON objects of a JSONL file, in order."""
    return [row for _, row in iter_jsonl(path)]


def read_json_object(path, what, error=DataError):
    """The JSON object in the file at `path`; an unreadable file, bad JSON or another JSON value raises `error` with
    a message that starts with `what` (the option that named the file) and names the file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except OSError as e:
        raise error(f"{what}: cannot read {path!r}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise error(f"{what}: {path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(value, dict):
        raise error(f"{what}: {path}: expected a JSON object")
    return value


def strict_json(value):
    """`value` with NaN and infinities as None (null) and dict keys as strings: what strict JSON readers (jq,
    JavaScript, most JSON libraries) accept. Python's json writes bare NaN, which is not JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def nan_for_null(value):
    """What strict_json wrote, read back: every null (written for NaN) is NaN again, in nested dicts and lists too.
    For files whose nulls all stand for numbers (metrics logs, results, attention scores), so that a resumed run
    computes and reports exactly what an uninterrupted one does."""
    if value is None:
        return math.nan
    if isinstance(value, dict):
        return {k: nan_for_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nan_for_null(v) for v in value]
    return value


def to_json(value, **kwargs):
    """json.dumps of strict_json(value): never NaN, never a non-string key."""
    return json.dumps(strict_json(value), allow_nan=False, **kwargs)


def write_jsonl(path, rows):
    """Write rows atomically: a reader never sees half a file, and a crash never truncates an old one."""
    write_atomic(path, "".join(to_json(r, ensure_ascii=False) + "\n" for r in rows))


def append_jsonl(path, row):
    with open(path, "a", encoding="utf-8") as f:
        f.write(to_json(row, ensure_ascii=False) + "\n")


def write_atomic(path, text):
    """Temp file in the same folder + rename: atomic on POSIX."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the permissions open() would
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def validate_record(row, where):
    """Check a record's field types; `where` is "file:line" for the message. Returns the row."""
    if "prompt" in row:
        if not isinstance(row["prompt"], str):
            raise DataError(f"{where}: field 'prompt' must be a string")
    elif "messages" in row:
        msgs = row["messages"]
        if not isinstance(msgs, list) or not all(isinstance(m, dict) and "role" in m and "content" in m for m in msgs):
            raise DataError(f"{where}: field 'messages' must be a list of {{'role', 'content'}} objects")
    else:
        raise DataError(f"{where}: record has neither 'prompt' nor 'messages'")
    ids = row.get("instruction_id_list", [])
    kwargs = row.get("kwargs", [{} for _ in ids])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise DataError(f"{where}: field 'instruction_id_list' must be a list of strings")
    if not isinstance(kwargs, list) or len(kwargs) != len(ids):
        raise DataError(f"{where}: field 'kwargs' must be a list with one object per instruction id ({len(ids)})")
    for j, kw in enumerate(kwargs):
        if not isinstance(kw, dict):
            raise DataError(f"{where}: field 'kwargs[{j}]' must be an object")
    soft = row.get("soft_constraints", [])
    if not isinstance(soft, list) or not all(isinstance(s, str) for s in soft):
        raise DataError(f"{where}: field 'soft_constraints' must be a list of strings")
    return row


def read_records(path):
    """Records of a JSONL file, validated, each error naming file:line and the field."""
    return [validate_record(row, f"{path}:{lineno}") for lineno, row in iter_jsonl(path)]


def prompt_text(record):
    """The user's text of a record (the last user message for chat records)."""
    if "prompt" in record:
        return record["prompt"]
    return [m["content"] for m in record["messages"] if m["role"] == "user"][-1]
