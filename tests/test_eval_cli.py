"""`python run.py eval` end to end on a tiny random model saved to disk: its responses.jsonl re-scored by `verify`
gives exactly its metrics; a killed run resumes without regenerating a finished prompt and refuses other settings;
--adapter changes the outputs; --samples K writes K re-scorable files whose metrics it averages; every bad input is
an error naming file, line or field, with nothing written to --out."""

import json
import os

import pytest
from test_chat import lora_adapter

from minirlvr.commands import eval as eval_cmd
from minirlvr.engine import chat

from minirlvr.evaluation import generate as eval_cli

from minirlvr.commands import verify as verify_cli
from minirlvr.engine.model import load_for_inference, tiny_model, word_tokenizer

WORDS = ["user", "assistant", "hello", "Hello", "river", "RIVER", ",", "the", "sea", "is", "calm", "Write", "about",
         "a", "and"]
TEMPLATE = ("{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}"
            "{% if add_generation_prompt %}assistant{% endif %}")
RECORDS = [
    {"key": 1, "prompt": "Write about the river", "instruction_id_list": ["change_case:english_lowercase"],
     "kwargs": [{}]},
    {"key": 2, "prompt": "hello sea", "instruction_id_list": ["punctuation:no_comma", "keywords:existence"],
     "kwargs": [{}, {"keywords": ["hello"]}]},
    {"key": 3, "prompt": "the sea is calm", "instruction_id_list": ["length_constraints:number_words"],
     "kwargs": [{"relation": "at least", "num_words": 5}]},
    {"key": 4, "prompt": "Write a river and the sea", "instruction_id_list": ["keywords:forbidden_words"],
     "kwargs": [{"forbidden_words": ["river"]}]},
    {"key": 5, "messages": [{"role": "user", "content": "Hello calm river"}],
     "instruction_id_list": ["keywords:frequency"], "kwargs": [{"keyword": "river", "frequency": 2,
                                                                "relation": "at least"}]},
    {"key": 6, "prompt": "about the RIVER", "instruction_id_list": ["change_case:english_capital"], "kwargs": [{}]},
]
FAST = ["--bench", "ifeval", "--max-new-tokens", "8", "--device", "cpu"]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    path = tmp_path_factory.mktemp("base")
    tok = word_tokenizer(WORDS)
    tok.chat_template = TEMPLATE
    model = tiny_model(vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                       init_std=0.1)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def adapter(base, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("adapter"))
    lora_adapter(base, path)
    return path


@pytest.fixture
def data(tmp_path):
    return write(tmp_path / "data.jsonl", RECORDS)


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def evaluate(base, data, out, *extra):
    return eval_cmd.main(["--model", base, "--data", data, "--out", str(out), *FAST, *extra])


def printed_metrics(text):
    """The four metric lines format_report prints, as {name: "12.34"}."""
    return dict(line.split() for line in text.splitlines() if line.strip().split(" ")[0] in
                ("prompt_level_strict", "prompt_level_loose", "instruction_level_strict", "instruction_level_loose"))


def test_end_to_end_rescored_by_verify(base, data, tmp_path, capsys):
    out = tmp_path / "out"
    report = evaluate(base, data, out, "--batch-rows", "2")  # three chunks
    shown = capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["generations.jsonl", "metrics.json", "responses.jsonl"]
    rows = read(out / "responses.jsonl")
    assert [set(r) for r in rows] == [{"prompt", "response"}] * 6
    assert [r["prompt"] for r in rows] == [r.get("prompt") or r["messages"][-1]["content"] for r in RECORDS]
    # the responses are the model's greedy answers through the chat template, each to its own prompt
    model, tok = load_for_inference(base, device="cpu")
    assert [r["response"] for r in rows] == chat.complete(model, tok, RECORDS, max_new_tokens=8).texts
    assert len({r["response"] for r in rows}) > 1

    saved = json.loads((out / "metrics.json").read_text())
    rescored = verify_cli.main(["--data", data, "--responses", str(out / "responses.jsonl")])
    again = capsys.readouterr().out
    assert rescored["metrics"] == saved["metrics"] == report["metrics"]
    assert rescored["per_instruction"] == saved["per_instruction"]
    assert printed_metrics(shown) == printed_metrics(again) and len(printed_metrics(shown)) == 4
    m = saved["metrics"]
    assert 0 < m["instruction_level_strict"] < 1 and m["prompt_level_strict"] <= m["prompt_level_loose"]
    assert saved["n_prompts"] == 6 and saved["n_instructions"] == 7 and saved["samples"] == 1
    assert "headline (ifeval): prompt_level_loose" in shown


def test_limit_and_rerun_rescores_without_the_model(base, data, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    first = evaluate(base, data, out, "--limit", "4")
    assert len(read(out / "responses.jsonl")) == 4 and first["n_prompts"] == 4

    def no_model(*a, **k):
        raise AssertionError("a finished run must not load the model again")

    monkeypatch.setattr(eval_cli, "load_for_inference", no_model)
    assert evaluate(base, data, out, "--limit", "4")["metrics"] == first["metrics"]


class Killed(Exception):
    pass


REAL_COMPLETE = chat.complete


def counting_complete(calls, kill_after=None):
    """chat.complete that records the prompts it is asked for, and raises (a kill) on call number kill_after."""

    def complete(model, tokenizer, prompts, **kw):
        if kill_after is not None and len(calls) == kill_after:
            raise Killed
        calls.append([chat.prompt_text(p) for p in prompts])
        return REAL_COMPLETE(model, tokenizer, prompts, **kw)

    return complete


def test_resume_after_kill_regenerates_nothing(base, data, tmp_path, monkeypatch):
    whole = evaluate(base, data, tmp_path / "whole", "--batch-rows", "2")
    out = tmp_path / "out"
    first = []
    monkeypatch.setattr(chat, "complete", counting_complete(first, kill_after=1))
    with pytest.raises(Killed):
        evaluate(base, data, out, "--batch-rows", "2")
    assert len(first) == 1 and len(first[0]) == 2
    assert sorted(os.listdir(out)) == ["generations.partial.jsonl"]  # no final file half-written
    partial = out / "generations.partial.jsonl"
    assert len(read(partial)) == 1 + 2  # settings + the finished chunk
    with open(partial, "a") as f:
        f.write('{"index": 0, "key": 1, "prom')  # killed in the middle of writing a line

    second = []
    monkeypatch.setattr(chat, "complete", counting_complete(second))
    resumed = evaluate(base, data, out, "--batch-rows", "2")
    generated = [p for call in second for p in call]
    assert sorted(generated + first[0]) == sorted(r.get("prompt") or r["messages"][-1]["content"] for r in RECORDS)
    assert not set(generated) & set(first[0])
    assert sorted(os.listdir(out)) == ["generations.jsonl", "metrics.json", "responses.jsonl"]
    assert read(out / "responses.jsonl") == read(tmp_path / "whole" / "responses.jsonl")
    assert resumed["metrics"] == whole["metrics"]


def test_sampled_resume_matches_uninterrupted(base, data, tmp_path, monkeypatch):
    sampled = ["--samples", "3", "--temperature", "1.0", "--batch-rows", "6"]  # 2 prompts per chunk
    seeds = []

    def seeded(model, tokenizer, prompts, **kw):
        seeds.append(kw["seed"])
        return REAL_COMPLETE(model, tokenizer, prompts, **kw)

    monkeypatch.setattr(chat, "complete", seeded)
    whole = evaluate(base, data, tmp_path / "whole", *sampled)
    assert len(seeds) == 3 and len(set(seeds)) == 3  # each chunk its own seed: no shared random stream
    monkeypatch.setattr(chat, "complete", counting_complete([], kill_after=1))
    with pytest.raises(Killed):
        evaluate(base, data, tmp_path / "out", *sampled)
    monkeypatch.setattr(chat, "complete", REAL_COMPLETE)
    resumed = evaluate(base, data, tmp_path / "out", *sampled)
    for name in whole["response_files"]:
        assert read(tmp_path / "out" / name) == read(tmp_path / "whole" / name)
    assert resumed["metrics"] == whole["metrics"]


def test_resume_refuses_other_settings(base, data, adapter, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    monkeypatch.setattr(chat, "complete", counting_complete([], kill_after=1))
    with pytest.raises(Killed):
        evaluate(base, data, out, "--batch-rows", "2")
    with pytest.raises(SystemExit) as e:
        eval_cmd.main(["--model", base, "--adapter", adapter, "--data", data, "--out", str(out), "--bench", "ifeval",
                       "--max-new-tokens", "6", "--device", "cpu"])
    msg = str(e.value)
    assert "generations.partial.jsonl was written with other settings" in msg
    assert "adapter: None then" in msg and "max_new_tokens: 8 then, 6 now" in msg
    assert "adapter_sha256" in msg and "data_sha256" not in msg and "temperature" not in msg
    with open(data, "a") as f:
        f.write(json.dumps({"prompt": "the sea", "instruction_id_list": ["punctuation:no_comma"]}) + "\n")
    with pytest.raises(SystemExit, match="data_sha256"):
        evaluate(base, data, out, "--batch-rows", "2")


def test_adapter_changes_outputs(base, data, adapter, tmp_path):
    plain = evaluate(base, data, tmp_path / "plain")
    tuned = evaluate(base, data, tmp_path / "tuned", "--adapter", adapter)
    got = [r["response"] for r in read(tmp_path / "tuned" / "responses.jsonl")]
    model, tok = load_for_inference(base, adapter=adapter, device="cpu")
    assert got == chat.complete(model, tok, RECORDS, max_new_tokens=8).texts
    assert got != [r["response"] for r in read(tmp_path / "plain" / "responses.jsonl")]
    assert tuned["settings"]["adapter"] == os.path.abspath(adapter) and plain["settings"]["adapter"] is None


def test_samples_are_averaged_and_each_file_rescores(base, data, tmp_path, capsys):
    out = tmp_path / "out"
    report = evaluate(base, data, out, "--samples", "3", "--temperature", "1.0")
    shown = capsys.readouterr().out
    assert "metrics are means over the 3 samples" in shown
    files = ["responses.jsonl", "responses-1.jsonl", "responses-2.jsonl"]
    assert sorted(os.listdir(out)) == sorted(files + ["generations.jsonl", "metrics.json"])
    texts = [[r["response"] for r in read(out / f)] for f in files]
    assert texts[0] != texts[1] != texts[2]
    per_file = [verify_cli.main(["--data", data, "--responses", str(out / f)])["metrics"] for f in files]
    assert per_file == report["metrics_per_sample"]
    for name, value in report["metrics"].items():
        assert value == pytest.approx(sum(m[name] for m in per_file) / 3)
    with pytest.raises(SystemExit) as e:
        evaluate(base, data, tmp_path / "greedy", "--samples", "2")
    assert e.value.code == 2 and "needs --temperature > 0" in capsys.readouterr().err


BAD_DATA = {
    "response file": ([{"prompt": "hello sea", "response": "hi"}],
                      r"data.jsonl:1: field 'instruction_id_list' is missing or empty.*response file"),
    "unknown id": ([RECORDS[0], {**RECORDS[1], "instruction_id_list": ["punctuation:no_comma", "count:nope"]}],
                   r"data.jsonl:2: field 'instruction_id_list\[1\]': unknown instruction id 'count:nope'"),
    "bad kwargs": ([{**RECORDS[2], "kwargs": [{"relation": "at least", "num_words": "five"}]}],
                   r"data.jsonl:1: field 'kwargs\[0\]': length_constraints:number_words: kwarg 'num_words'"),
    "repeated prompt": ([RECORDS[0], RECORDS[1], RECORDS[0]], r"data.jsonl:3: field 'prompt' repeats line 1"),
    "not a record": ([RECORDS[0], {"text": "hello"}], r"data.jsonl:2: record has neither 'prompt' nor 'messages'"),
    "empty": ([], r"data.jsonl: no records"),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_fails_before_loading_anything(base, tmp_path, monkeypatch, case):
    rows, pattern = BAD_DATA[case]

    def nothing(*a, **k):
        raise AssertionError("bad data must fail before the model is loaded")

    monkeypatch.setattr(eval_cli, "load_for_inference", nothing)
    data, out = write(tmp_path / "data.jsonl", rows), tmp_path / "out"
    with pytest.raises(SystemExit, match=pattern):
        evaluate(base, data, out)
    assert not out.exists()


def test_not_jsonl(base, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps(RECORDS, indent=1))
    with pytest.raises(SystemExit, match=r"data.jsonl:1: not valid JSON"):
        evaluate(base, str(data), tmp_path / "out")
    with pytest.raises(SystemExit, match=r"No such file.*missing.jsonl"):
        evaluate(base, str(tmp_path / "missing.jsonl"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_model_and_adapter_paths(base, data, adapter, tmp_path, capsys):
    other = tmp_path / "other"
    tok = word_tokenizer(WORDS)
    model = tiny_model(vocab_size=len(tok), hidden_size=32, eos_token_id=tok.eos_token_id,
                       pad_token_id=tok.pad_token_id)
    model.save_pretrained(other)
    tok.save_pretrained(other)
    lora_adapter(str(other), str(tmp_path / "other-adapter"))
    cases = [
        (["--model", str(tmp_path / "no-model")], r"model path '.*no-model' is not a folder"),
        (["--model", base, "--adapter", str(tmp_path / "no-adapter")], r"'.*no-adapter' has no adapter_config.json"),
        (["--model", base, "--adapter", str(tmp_path / "other-adapter")],
         r"adapter '.*other-adapter' does not fit the base model"),
    ]
    for i, (model_args, pattern) in enumerate(cases):
        out = tmp_path / f"out{i}"
        with pytest.raises(SystemExit, match=pattern):
            eval_cmd.main([*model_args, "--data", data, "--out", str(out), *FAST])
        assert not out.exists()
    # a same-shaped adapter whose config names another base loads, with a warning
    config = json.loads((tmp_path / "other-adapter" / "adapter_config.json").read_text())
    assert os.path.basename(config["base_model_name_or_path"]) == "other"
    eval_cli.warn_other_base(str(tmp_path / "other-adapter"), base)
    assert "field 'base_model_name_or_path' is" in capsys.readouterr().out
    eval_cli.warn_other_base(adapter, base)
    assert capsys.readouterr().out == ""


def test_refuses_a_folder_it_did_not_write(base, data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"holds metrics.json but no generations.partial.jsonl"):
        evaluate(base, data, out)
    assert os.listdir(out) == ["metrics.json"]


def test_without_a_terminal_eval_prints_progress_lines(base, data, tmp_path, monkeypatch, capsys):
    # under pytest stdout is not a terminal: the bar is off, and plain lines report progress instead
    monkeypatch.setattr("minirlvr.engine.progress.PROGRESS_EVERY_S", 0.0)
    evaluate(base, data, tmp_path / "out", "--batch-rows", "2")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("eval ifeval: ")
             and "tokens/s" in line]
    assert [line.split()[2] for line in lines] == ["2/6", "4/6", "6/6"]


def test_threads_option_sets_torchs_threads(base, data, tmp_path, monkeypatch):
    import torch

    seen = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    evaluate(base, data, tmp_path / "out", "--threads", "1", "--limit", "1")
    assert seen == [1]
