"""datasets.py / `python run.py data convert`: IFEval, open-instruct RLVR and VerInstruct files become records; our
ids map to hard constraints with validated kwargs, the rest stay soft; malformed lines name file, line, field."""

import json
import re

import pytest

from minirlvr.commands import data as data_cli

from minirlvr.datasets import convert as datasets
from minirlvr.data import DataError, read_records


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def raises(fn, pattern):
    with pytest.raises(DataError) as e:
        fn()
    assert re.search(pattern, str(e.value)), str(e.value)


# ---------------------------------------------------------------------------------------------- IFEval
IFEVAL_OK = [
    {"key": 7, "prompt": "Write a poem.", "instruction_id_list": ["punctuation:no_comma", "detectable_format:number_bullet_lists"],
     "kwargs": [{"num_bullets": None}, {"num_bullets": 3, "keywords": None}]},
    {"key": 8, "prompt": "Write a story.", "instruction_id_list": ["future:word_budget"],
     "kwargs": [{"min_words": 10, "max_words": 20}]},
]


def test_ifeval_maps_known_ids_and_keeps_unknown_ones_soft(tmp_path):
    records, stats = datasets.read_ifeval(write(tmp_path / "if.jsonl", IFEVAL_OK))
    a, b = records
    assert a["instruction_id_list"] == ["punctuation:no_comma", "detectable_format:number_bullet_lists"]
    assert a["kwargs"] == [{}, {"num_bullets": 3}] and a["soft_constraints"] == [] and a["key"] == 7
    assert b["instruction_id_list"] == [] and len(b["soft_constraints"]) == 1
    assert "word budget" in b["soft_constraints"][0] and "min_words: 10" in b["soft_constraints"][0]
    assert stats["mapped"]["punctuation:no_comma"] == 1 and stats["soft"]["future:word_budget"] == 1
    raises(lambda: datasets.read_ifeval(str(tmp_path / "if.jsonl"), unknown="error"),
           r"if.jsonl:2: field 'instruction_id_list\[0\]' names unknown instruction id 'future:word_budget'")


@pytest.mark.parametrize("bad,pattern", [
    ({"prompt": "x", "instruction_id_list": ["detectable_format:number_bullet_lists"], "kwargs": [{"num_bullets": "three"}]},
     r"bad.jsonl:2: field 'instruction_id_list\[0\]'.*'num_bullets' must be a non-negative integer"),
    ({"prompt": "x", "kwargs": [{}]}, r"bad.jsonl:2: field 'instruction_id_list' is missing"),
    ({"prompt": "x", "instruction_id_list": ["not an id"], "kwargs": [{}]}, r"bad.jsonl:2: .*not an instruction id"),
    ({"instruction_id_list": [], "kwargs": []}, r"bad.jsonl:2: record has neither 'prompt' nor 'messages'"),
    ("{oops", r"bad.jsonl:2: not valid JSON"),
])
def test_ifeval_malformed_lines(tmp_path, bad, pattern):
    path = write(tmp_path / "bad.jsonl", [IFEVAL_OK[0], bad])
    raises(lambda: datasets.read_ifeval(path), pattern)


# ---------------------------------------------------------------------------------------------- RLVR
def rlvr(gt, constraint="", dataset="ifeval", text="Write about tea."):
    return {"messages": [{"role": "user", "content": text}], "ground_truth": gt if isinstance(gt, str) else json.dumps(gt),
            "dataset": dataset, "constraint_type": "x", "constraint": constraint}


def null_args(**kw):
    base = dict.fromkeys(["N", "quantifier", "end_phrase", "keyword_list", "word", "forbidden_words", "letter", "i",
                          "first_word", "postscript_marker", "options", "section_splitter", "original_prompt"])
    return {**base, **kw}


def test_rlvr_old_and_new_ground_truth(tmp_path):
    rows = [
        rlvr(null_args(func_name="validate_lowercase")),
        rlvr(null_args(func_name="validate_word_constraint", N=100, quantifier="around")),
        rlvr(null_args(func_name="validate_word_constraint", N=50.0, quantifier="at most")),
        rlvr(null_args(func_name="verify_keyword_frequency", word="tea", N=3),
             constraint="In your response, the word tea should appear 3 times."),
        rlvr({"func_name": "validate_choice",
              "options": "('My answer is yes.', 'My answer is no.', 'My answer is maybe.')"}),
        rlvr("{}", dataset="gsm8k"),
        rlvr(str([{"instruction_id": ["keywords:existence", "future:keyword_budget"],
                   "kwargs": [{"keywords": ["tea"]}, {"keyword1": "a", "keyword2": "b"}]}])),  # a Python literal
    ]
    records, stats = datasets.read_rlvr(write(tmp_path / "rlvr.jsonl", rows))
    assert stats["skipped"] == {"gsm8k": 1} and stats["rows"] == 7 and len(records) == 6
    low, around, at_most, freq, choice, multi = records
    assert low["instruction_id_list"] == ["change_case:english_lowercase"] and low["messages"][0]["content"] == "Write about tea."
    assert around["instruction_id_list"] == ["length_constraints:word_count_range"]
    assert around["kwargs"] == [{"min_words": 90, "max_words": 110}]
    assert at_most["kwargs"] == [{"num_words": 51, "relation": "less than"}]
    assert freq["instruction_id_list"] == [] and freq["soft_constraints"] == ["In your response, the word tea should appear 3 times."]
    assert choice["instruction_id_list"] == ["detectable_format:constrained_response"]
    assert multi["instruction_id_list"] == ["keywords:existence"] and multi["kwargs"] == [{"keywords": ["tea"]}]
    assert len(multi["soft_constraints"]) == 1 and "keyword budget" in multi["soft_constraints"][0]
    assert [r["key"] for r in records] == [1, 2, 3, 4, 5, 7]
    assert stats["soft"] == {"verify_keyword_frequency": 1, "future:keyword_budget": 1}


@pytest.mark.parametrize("bad,pattern", [
    (rlvr(null_args(func_name="validate_sparkles")), r"r.jsonl:2: field 'ground_truth.func_name' names unknown function"),
    (rlvr(null_args(func_name="verify_bullet_points", N="four")), r"r.jsonl:2: field 'ground_truth.N' must be int, got str"),
    (rlvr(null_args(func_name="verify_bullet_points")), r"r.jsonl:2: field 'ground_truth.N' is missing"),
    ({"messages": [{"role": "user", "content": "x"}], "dataset": "ifeval"}, r"r.jsonl:2: field 'ground_truth' is missing"),
    (rlvr("not json {"), r"r.jsonl:2: field 'ground_truth' is neither JSON nor a Python literal"),
    (rlvr(json.dumps([{"instruction_id": ["no_such:id"], "kwargs": [{}]}])), None),
])
def test_rlvr_malformed_lines(tmp_path, bad, pattern):
    path = write(tmp_path / "r.jsonl", [rlvr(null_args(func_name="validate_no_commas")), bad])
    if pattern is None:  # an unknown id: soft by default, an error when asked
        records, _ = datasets.read_rlvr(path)
        assert records[1]["soft_constraints"] and not records[1]["instruction_id_list"]
        raises(lambda: datasets.read_rlvr(path, unknown="error"), r"r.jsonl:2: field 'ground_truth.instruction_id\[0\]'")
    else:
        raises(lambda: datasets.read_rlvr(path), pattern)


# ---------------------------------------------------------------------------------------------- VerInstruct
RULE = "import re\ndef check_following(instruction, response):\n    return len(response.split()) < 50\n"
LLM = ('from llm_call import llm_score\ndef check_following(instruction, response):\n'
       '    return llm_score(instruction, response, "Use a humorous tone.")\n')
LLM_ASSISTED = ('from llm_call import llm_extract\ndef check_following(instruction, response):\n'
                '    return "x" in llm_extract(instruction, response, "the title")\n')


def test_verinstruct_layouts(tmp_path):
    rows = [
        {"id": 11, "prompt": "Write a joke.", "checkers": ["[rule] Length_Limit", "[llm] Tone"], "functions": [RULE, LLM]},
        {"id": 12, "prompt": "Write a joke.", "checkers": ["[llm] Desired_Writing_Style", "[rule] Length_Limit"],
         "functions": [RULE]},  # one function per [rule] checker only
        {"prompt": [{"role": "user", "content": "Tell a story."}],
         "reward_model": {"ground_truth": json.dumps({"checkers": ["[rule] Title_Rule", "Length"],
                                                       "functions": [LLM_ASSISTED, RULE]})}},
    ]
    records, stats = datasets.read_verinstruct(write(tmp_path / "v.jsonl", rows))
    a, b, c = records
    assert a["rule_checks"] == [{"name": "Length_Limit", "code": RULE}] and a["soft_constraints"] == ["Use a humorous tone."]
    assert a["dataset_id"] == 11 and a["key"] == 1 and a["instruction_id_list"] == []
    assert b["rule_checks"] == [{"name": "Length_Limit", "code": RULE}] and b["soft_constraints"] == ["Desired writing style"]
    assert c["messages"][0]["content"] == "Tell a story." and c["rule_checks"] == [{"name": "Length", "code": RULE}]
    assert c["soft_constraints"] == ["Title rule"]  # a rule function that calls the LLM is judged instead
    # (and the untagged "Length" counts as a rule: its source never mentions the llm_call module)
    assert stats["mapped"]["rule"] == 3 and stats["soft"] == {"llm": 2, "rule needing an LLM": 1}
    out = tmp_path / "records.jsonl"
    data_cli.main(["convert", "--format", "verinstruct", "--input", str(tmp_path / "v.jsonl"), "--out", str(out)])
    assert [r["rule_checks"] for r in read_records(out)] == [r["rule_checks"] for r in records]


@pytest.mark.parametrize("bad,pattern", [
    ({"prompt": "x", "functions": [RULE]}, r"v.jsonl:2: field 'checkers' must be a list of strings"),
    ({"prompt": "x"}, r"v.jsonl:2: field 'checkers' is missing"),
    ({"checkers": ["[rule] a"], "functions": [RULE]}, r"v.jsonl:2: field 'prompt' is missing"),
    ({"prompt": "x", "checkers": ["[rule] a", "[rule] b", "[llm] c"], "functions": [RULE]},
     r"v.jsonl:2: field 'functions' has 1 entries for 3 checkers"),
    ({"prompt": "x", "checkers": ["[rule] a"], "functions": ["def check_following(instruction, response:\n"]},
     r"v.jsonl:2: field 'functions\[0\]' is not valid Python"),
    ({"prompt": "x", "checkers": ["[rule] a"], "functions": ["def check(response):\n    return True\n"]},
     r"v.jsonl:2: field 'functions\[0\]' defines no top-level check_following"),
])
def test_verinstruct_malformed_lines(tmp_path, bad, pattern):
    path = write(tmp_path / "v.jsonl", [{"prompt": "ok", "checkers": ["[rule] a"], "functions": [RULE]}, bad])
    raises(lambda: datasets.read_verinstruct(path), pattern)


def test_convert_cli_reports_errors_and_writes_nothing(tmp_path):
    path = write(tmp_path / "bad.jsonl", [{"prompt": "x", "instruction_id_list": ["punctuation:no_comma"],
                                           "kwargs": [{"extra": 1}]}])
    out = tmp_path / "out.jsonl"
    with pytest.raises(SystemExit) as e:
        data_cli.main(["convert", "--format", "ifeval", "--input", path, "--out", str(out)])
    assert "bad.jsonl:1: field 'instruction_id_list[0]'" in str(e.value) and "unexpected kwarg 'extra'" in str(e.value)
    assert not out.exists()


def test_an_empty_input_leaves_an_existing_output_byte_for_byte(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"prompt": "an earlier conversion"}\n')
    with pytest.raises(SystemExit) as e:
        data_cli.main(["convert", "--format", "ifeval", "--input", str(empty), "--out", str(out)])
    assert "gave no record" in str(e.value) and "was not written" in str(e.value)
    assert out.read_bytes() == b'{"prompt": "an earlier conversion"}\n'
