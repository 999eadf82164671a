"""`python run.py verify`: metrics on a small hand-checked file, the per-id table, the JSON report,
unmatched prompts reported (never dropped), and bad files named by file and line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from minirlvr.commands import verify as verify_cli

ROOT = Path(__file__).resolve().parents[1]

RECORDS = [
    {"key": 1, "prompt": "Say hi without commas.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    {"key": 2, "prompt": "Say hi in at least 3 words, no commas.",
     "instruction_id_list": ["length_constraints:number_words", "punctuation:no_comma"],
     "kwargs": [{"num_words": 3, "relation": "at least"}, {}]},
    {"key": 3, "prompt": "Wrap it in quotes.", "instruction_id_list": ["startend:quotation"], "kwargs": [{}]},
    {"key": 4, "prompt": "Never answered.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
]
RESPONSES = [
    {"prompt": "Say hi without commas.", "response": "Hi there friend"},                 # passes
    {"prompt": "Say hi in at least 3 words, no commas.", "response": "Hi, you"},          # fails both
    {"prompt": "Wrap it in quotes.", "response": '"Quoted"\nThanks!'},                    # loose only
    {"prompt": "A prompt that is not in the data.", "response": "whatever"},
]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def files(tmp_path):
    return write(tmp_path / "data.jsonl", RECORDS), write(tmp_path / "resp.jsonl", RESPONSES), tmp_path


def test_metrics_table_and_report(files, capsys):
    data, resp, tmp = files
    out_path = tmp / "report.json"
    report = verify_cli.main(["--data", data, "--responses", resp, "--out", str(out_path)])
    printed = capsys.readouterr().out
    m = report["metrics"]
    assert report["n_prompts"] == 3 and report["n_instructions"] == 4
    assert m["prompt_level_strict"] == pytest.approx(1 / 3) and m["prompt_level_loose"] == pytest.approx(2 / 3)
    assert m["instruction_level_strict"] == pytest.approx(1 / 4)
    assert m["instruction_level_loose"] == pytest.approx(2 / 4)
    shown = dict(line.split() for line in printed.splitlines()[1:5])
    assert shown == {"prompt_level_strict": "33.33", "prompt_level_loose": "66.67",
                     "instruction_level_strict": "25.00", "instruction_level_loose": "50.00"}
    table = report["per_instruction"]
    assert table["punctuation:no_comma"] == {"n": 2, "strict": 0.5, "loose": 0.5}
    assert table["startend:quotation"] == {"n": 1, "strict": 0.0, "loose": 1.0}
    assert any(line.split()[:2] == ["startend:quotation", "1"] for line in printed.splitlines())
    # nothing silently dropped: both the stray response and the unanswered record are reported
    assert "1 responses whose prompt is not in the data" in printed and f"{resp}:4" in printed
    assert "1 records with no response" in printed and "key 4" in printed
    saved = json.loads(out_path.read_text())
    assert saved["metrics"] == m and saved["unmatched_responses"][0]["where"] == f"{resp}:4"
    assert [r["key"] for r in saved["results"]] == [1, 2, 3]
    assert saved["results"][1]["strict"] == [False, False]


@pytest.mark.parametrize("which,line,content,expect", [
    ("resp", 2, "{not json", "not valid JSON"),
    ("resp", 3, json.dumps({"prompt": "x"}), "'response'"),
    ("data", 2, json.dumps({"prompt": "x", "instruction_id_list": ["a:b"], "kwargs": []}), "'kwargs'"),
    ("data", 1, "[1, 2]", "expected a JSON object"),
])
def test_bad_lines_name_file_and_line(files, which, line, content, expect):
    data, resp, _ = files
    path = Path(data if which == "data" else resp)
    lines = path.read_text().splitlines()
    lines[line - 1] = content
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SystemExit) as e:
        verify_cli.main(["--data", data, "--responses", resp])
    assert f"{path}:{line}:" in str(e.value) and expect in str(e.value)


def test_unknown_instruction_names_record_and_id(files):
    data, resp, tmp = files
    bad = [dict(RECORDS[0], instruction_id_list=["keywords:bogus"])] + RECORDS[1:]
    data = write(tmp / "bad.jsonl", bad)
    with pytest.raises(SystemExit) as e:
        verify_cli.main(["--data", data, "--responses", resp])
    assert data in str(e.value) and "keywords:bogus" in str(e.value) and "key 1" in str(e.value)


def test_duplicate_response_and_no_match(files):
    data, resp, tmp = files
    dup = write(tmp / "dup.jsonl", RESPONSES[:1] * 2)
    with pytest.raises(SystemExit, match=r"dup.jsonl:2: a second response"):
        verify_cli.main(["--data", data, "--responses", dup])
    none = write(tmp / "none.jsonl", RESPONSES[3:])
    with pytest.raises(SystemExit, match="no response"):
        verify_cli.main(["--data", data, "--responses", none])


def test_run_py_dispatch(files):
    data, resp, tmp = files
    out = subprocess.run([sys.executable, str(ROOT / "run.py"), "verify", "--data", data, "--responses", resp,
                          "--out", str(tmp / "r.json")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "instruction_level_strict" in out.stdout and (tmp / "r.json").exists()


# --- IFBench files: the ids say which verifiers; prompts match up to surrounding whitespace -------------

IFBENCH_RECORDS = [
    {"key": "7", "prompt": "Say yes or no.", "instruction_id_list": ["format:options", "format:title_case"],
     "kwargs": [{"options": "yes/no/maybe", "N": None, "keyword": None}, {"N": None}]},
    {"key": "8", "prompt": "Count to five.", "instruction_id_list": ["count:numbers"], "kwargs": [{"N": 5.0}]},
]
IFBENCH_RESPONSES = [
    {"prompt": "Say yes or no. ", "response": "Answer:\nYes"},     # trailing space, as IFBench ships them
    {"prompt": "Count to five.", "response": "1 2 3 4 5"},
]


def test_ifbench_file_scored_like_ifeval(tmp_path, capsys):
    data, resp = write(tmp_path / "ifb.jsonl", IFBENCH_RECORDS), write(tmp_path / "ifbr.jsonl", IFBENCH_RESPONSES)
    report = verify_cli.main(["--data", data, "--responses", resp])
    printed = capsys.readouterr().out
    assert report["n_prompts"] == 2 and not report["unmatched_responses"] and not report["missing_responses"]
    assert report["per_instruction"] == {"count:numbers": {"n": 1, "strict": 1.0, "loose": 1.0},
                                         "format:options": {"n": 1, "strict": 0.0, "loose": 1.0},
                                         "format:title_case": {"n": 1, "strict": 1.0, "loose": 1.0}}
    assert report["metrics"] == {"prompt_level_strict": 0.5, "prompt_level_loose": 1.0,
                                 "instruction_level_strict": pytest.approx(2 / 3), "instruction_level_loose": 1.0}
    assert any(line.split()[:2] == ["format:options", "1"] for line in printed.splitlines())


SHARED_IFBENCH = ROOT.parent / "shared" / "data" / "ifbench"


@pytest.mark.skipif(not (SHARED_IFBENCH / "sample_output.jsonl").exists(),
                    reason=f"IFBench data not found in {SHARED_IFBENCH} (the shared data folder beside the repository)")
def test_ifbench_release_on_the_command_line():
    """`python run.py verify` on IFBench's own test set and released responses: the four metrics and a row per
    id (agreement with IFBench's reference is in test_ifbench_agreement.py)."""
    out = subprocess.run([sys.executable, str(ROOT / "run.py"), "verify", "--data",
                          str(SHARED_IFBENCH / "IFBench_test.jsonl"), "--responses",
                          str(SHARED_IFBENCH / "sample_output.jsonl")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "scored 293 prompts, 334 instructions"
    assert [line.split()[0] for line in lines[1:5]] == ["prompt_level_strict", "prompt_level_loose",
                                                         "instruction_level_strict", "instruction_level_loose"]
    rows = {line.split()[0] for line in lines if line.startswith("  ") and line.split()[0].count(":") == 1}
    assert len(rows) == 56 and "words:start_verb" in rows  # 2 of the 58 ids only occur in unanswered prompts
    assert "1 responses whose prompt is not in the data" in out.stdout


def test_verify_says_which_tagger_scored_start_verb(tmp_path, capsys):
    record = {"key": 1, "prompt": "Start with a verb.", "instruction_id_list": ["words:start_verb"], "kwargs": [{}]}
    data = write(tmp_path / "d.jsonl", [record])
    resp = write(tmp_path / "r.jsonl", [{"prompt": record["prompt"], "response": "Write a poem."}])
    verify_cli.main(["--data", data, "--responses", resp])
    from minirlvr.verifiers import pos_tagger

    assert f"words:start_verb tagged with {pos_tagger.describe()}" in capsys.readouterr().out


def test_without_a_terminal_verify_prints_progress_lines(files, monkeypatch, capsys):
    monkeypatch.setattr("minirlvr.engine.progress.PROGRESS_EVERY_S", 0.0)
    data, resp, _ = files
    verify_cli.main(["--data", data, "--responses", resp])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("verify: ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert "prompts/s" in lines[0] and ", ETA " in lines[0]
