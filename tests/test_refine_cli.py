"""refine_cli.py / `python run.py refine`: critic -> one soft constraint -> pilot, counts and one reason per dropped
record, both --keep rules, resuming after a kill without redoing finished prompts, and clear errors."""

import json
import random

import pytest

from minirlvr.commands import refine as refine_cmd
from minirlvr.refine import filters
from minirlvr.refine import stages as refine_cli
from minirlvr.engine.model import tiny_model, word_tokenizer
from minirlvr.reward.constraint import hard_reward

WORDS = [f"w{i}" for i in range(12)]
KEEP_ALL = "VERDICT: KEEP\nREASON: fine"


def tea_record(key):
    return {"key": key, "prompt": f"Say something ({key}). Include the keywords \"tea\" in your response.",
            "instruction_id_list": ["keywords:existence"], "kwargs": [{"keywords": ["tea"]}]}


def scripted_sample(calls):
    """Record key "all-k": every sample says tea; "none-k": none does; "mix-k": every other one does; "half-k": all
    say tea with a comma (half the reward of a record that also bans commas)."""
    def sample(records, samples, seed):
        calls.append(([r["key"] for r in records], seed))
        kinds = [str(r["key"]).split("-")[0] for r in records]
        return [("tea, yes" if k == "half" else "tea" if k == "all" or (k == "mix" and j % 2) else "coffee")
                for k in kinds for j in range(samples)]
    return sample


def ask_keep(prompts):
    return [KEEP_ALL] * len(prompts)


def test_keep_rules_and_report(tmp_path):
    records = [tea_record(k) for k in ("all-0", "mix-1", "none-2", "mix-3", "half-4")]
    records[3]["soft_constraints"] = ["Use a warm tone.", "Be concise."]
    records[3]["prompt"] += " Use a warm tone. Be concise."
    records[4]["instruction_id_list"].append("punctuation:no_comma")  # every sample: reward 0.5, no sample passes
    records[4]["kwargs"].append({})
    kept, report = filters_run(records, tmp_path / "w1", keep="mixed-only")
    assert [r["key"] for r in kept] == ["mix-1", "mix-3"]
    pilot = report["stages"][2]
    assert pilot == {"stage": "pilot", "in": 5, "out": 2, "dropped": {"all_pass": 1, "all_fail": 2}, "samples": 4,
                     "keep": "mixed-only", "mean_pass_rate": 0.4}
    assert {d["key"]: d["reason"] for d in report["dropped"]} == {
        "all-0": "all_pass: every one of 4 samples passed (pass rate 1)",
        "none-2": "all_fail: no one of 4 samples passed (pass rate 0)",
        "half-4": "all_fail: no one of 4 samples passed (pass rate 0)"}
    assert report["stages"][1]["trimmed"] == 1 and len(kept[1]["soft_constraints"]) == 1
    kept, report = filters_run(records, tmp_path / "w2", keep="all-fail")
    assert [r["key"] for r in kept] == ["mix-1", "none-2", "mix-3", "half-4"]
    assert report["stages"][2]["dropped"] == {"all_pass": 1}


def filters_run(records, work, keep, **kw):
    work.mkdir()
    return refine_cli.refine(records, ask_keep, scripted_sample([]), hard_reward, str(work), pilot_samples=4,
                             keep=keep, **kw)


def test_resume_after_a_kill_redoes_nothing_finished(tmp_path):
    records = [tea_record(f"{k}-{i}") for i, k in enumerate(["mix", "all", "none", "mix", "mix", "none", "all"])]
    work = tmp_path / "work"
    work.mkdir()

    # a kill in the critic, after 2 chunks of 2 prompts
    asked = []

    def dying_ask(prompts):
        if len(asked) == 4:
            raise KeyboardInterrupt
        asked.extend(prompts)
        return ask_keep(prompts)
    with pytest.raises(KeyboardInterrupt):
        refine_cli.refine(records, dying_ask, scripted_sample([]), hard_reward, str(work), pilot_samples=2, chunk=2)

    # a kill in the pilot, after 2 of its 4 chunks: the critic is not asked again about the first 4 prompts
    calls, scored = [], []

    def dying_reward(recs, texts):
        if len(scored) == 2:
            raise KeyboardInterrupt
        scored.append(1)
        return hard_reward(recs, texts)
    asked_again = []
    with pytest.raises(KeyboardInterrupt):
        refine_cli.refine(records, lambda p: asked_again.extend(p) or ask_keep(p), scripted_sample(calls),
                          dying_reward, str(work), pilot_samples=2, chunk=2)
    assert len(asked_again) == 3  # only the prompts the first run never reviewed

    # the rerun samples only the two unfinished chunks and ends as an uninterrupted run would
    calls2, asked3 = [], []
    kept, report = refine_cli.refine(records, lambda p: asked3.extend(p) or ask_keep(p), scripted_sample(calls2),
                                     hard_reward, str(work), pilot_samples=2, chunk=2)
    assert asked3 == [] and [keys for keys, _ in calls2] == [["mix-4", "none-5"], ["all-6"]]
    assert [keys for keys, _ in calls[:2]] == [["mix-0", "all-1"], ["none-2", "mix-3"]]
    fresh, calls_fresh = tmp_path / "fresh", []
    fresh.mkdir()
    kept_fresh, report_fresh = refine_cli.refine(records, ask_keep, scripted_sample(calls_fresh), hard_reward,
                                                 str(fresh), pilot_samples=2, chunk=2)
    assert kept == kept_fresh and report == report_fresh
    assert calls[:2] + calls2 == calls_fresh  # the same prompts with the same sampling seeds
    assert [r["key"] for r in kept] == ["mix-0", "mix-3", "mix-4"]


def test_one_soft_record_handles_chat_records():
    rec = {"key": 1, "messages": [{"role": "system", "content": "sys"},
                                  {"role": "user", "content": "Task. Use a warm tone. Be concise."}],
           "soft_constraints": ["Use a warm tone.", "Be concise."]}
    out = filters.one_soft_record(rec, random.Random(0))
    assert len(out["soft_constraints"]) == 1 and "prompt" not in out and out["messages"][0]["content"] == "sys"
    dropped = [t for t in rec["soft_constraints"] if t not in out["soft_constraints"]][0]
    assert dropped not in out["messages"][1]["content"] and out["soft_constraints"][0] in out["messages"][1]["content"]
    assert rec["messages"][1]["content"] == "Task. Use a warm tone. Be concise."  # the input is not modified


# ---------------------------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    tok = word_tokenizer(WORDS)
    model = tiny_model(vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, init_std=0.1)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def write_records(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


CLI_RECORDS = [
    {"key": 0, "prompt": "w1 w2", "instruction_id_list": ["keywords:existence"], "kwargs": [{"keywords": ["w3"]}]},
    {"key": 1, "prompt": "w4", "instruction_id_list": ["startend:quotation"], "kwargs": [{}]},
    {"key": 2, "prompt": "w5 w6", "instruction_id_list": ["keywords:existence"], "kwargs": [{"keywords": ["w7"]}]},
    {"key": 3, "prompt": "w8", "instruction_id_list": ["change_case:english_lowercase", "change_case:english_capital"],
     "kwargs": [{}, {}]},
    {"key": 4, "prompt": "w9 w10", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
]


def test_refine_end_to_end_on_a_tiny_model(tmp_path, model_dir, capsys):
    data = write_records(tmp_path / "data.jsonl", CLI_RECORDS)
    out = tmp_path / "refined.jsonl"
    argv = ["--data", data, "--model", model_dir, "--out", str(out), "--pilot-samples", "4", "--max-new-tokens", "6",
            "--chunk", "2", "--critic-tokens", "4"]
    report = refine_cmd.main(argv)
    critic, one_soft, pilot = report["stages"]
    # the random critic never answers KEEP/DROP (no such words): 4 unparsed answers, kept; the conflict goes
    assert critic == {"stage": "critic", "in": 5, "out": 4, "dropped": {"conflict": 1}, "unparsed_kept": 4}
    assert one_soft["in"] == one_soft["out"] == 4 and one_soft["trimmed"] == 0
    rows = {}
    for line in open(str(out) + ".work/pilot.jsonl"):
        row = json.loads(line)
        rows[row["key"]] = row
    assert sorted(rows) == [0, 1, 2, 4] and all(len(r["rewards"]) == 4 for r in rows.values())
    assert rows[1]["pass_rate"] == 0.0  # no quotation marks in the vocabulary
    kept_keys = [json.loads(line)["key"] for line in open(out)]
    assert kept_keys == [k for k in (0, 2, 4) if 0 < rows[k]["pass_rate"] < 1]
    assert pilot["in"] == 4 and pilot["out"] == len(kept_keys) and sum(pilot["dropped"].values()) == 4 - len(kept_keys)
    assert len(report["dropped"]) == 5 - len(kept_keys)
    assert {d["stage"] for d in report["dropped"]} == {"critic", "pilot"}
    saved = json.loads((tmp_path / "refine_report.json").read_text())
    assert saved["stages"] == report["stages"] and saved["dropped"] == report["dropped"]
    printed = capsys.readouterr().out
    assert "critic" in printed and "pilot" in printed and f"5 prompts -> {len(kept_keys)} kept" in printed
    # a rerun resumes everything: nothing is sampled again and the result is the same
    pilot_file = (tmp_path / "refined.jsonl.work" / "pilot.jsonl").read_text()
    again = refine_cmd.main(argv)
    assert again["stages"] == report["stages"] and "already" in capsys.readouterr().out
    assert (tmp_path / "refined.jsonl.work" / "pilot.jsonl").read_text() == pilot_file
    with pytest.raises(SystemExit, match="belongs to another refine job"):
        refine_cmd.main(argv[:-2] + ["--critic-tokens", "5"])


def test_pilot_judges_soft_constraints_with_the_starting_policy(tmp_path, model_dir, monkeypatch):
    from minirlvr.reward import llm_judge

    asked, real = [], llm_judge.LLMJudge.check

    def check(self, items):
        asked.extend(c for _, _, cs in items for c in cs)
        return real(self, items)

    monkeypatch.setattr(llm_judge.LLMJudge, "check", check)
    records = [dict(r, soft_constraints=["Be warm."], prompt=r["prompt"] + " Be warm.") for r in CLI_RECORDS[:2]]
    data = write_records(tmp_path / "data.jsonl", records)
    report = refine_cmd.main(["--data", data, "--model", model_dir, "--out", str(tmp_path / "r.jsonl"),
                              "--pilot-samples", "2", "--max-new-tokens", "4", "--critic-tokens", "2"])
    assert report["stages"][2]["in"] == 2
    assert asked and set(asked) == {"Be warm."}  # the soft constraint went to the judge, once per sample at most
    assert len(asked) <= 2 * 2


@pytest.mark.parametrize("change,pattern", [
    (lambda rs: rs[1].update(key=0), r"data.jsonl:2: field 'key' 0 repeats the key of line 1"),
    (lambda rs: rs[2].update(kwargs=[{"keywords": "w7"}]),
     r"data.jsonl:3: field 'instruction_id_list\[0\]' / 'kwargs\[0\]'.*'keywords' must be a non-empty list"),
    (lambda rs: rs[0].update(instruction_id_list=["no:such_id"], kwargs=[{}]), r"data.jsonl:1: .*unknown instruction id"),
    (lambda rs: rs[0].update(rule_checks=[{"name": "x", "code": "def check_following(i, r): return True"}]),
     r"--run-dataset-code"),
    (lambda rs: rs[0].update(ground_truth="{}"), r"data.jsonl:1: this looks like a raw RLVR / VerInstruct file"),
])
def test_bad_input_is_a_clear_error_and_nothing_is_written(tmp_path, model_dir, change, pattern):
    records = [dict(r) for r in CLI_RECORDS]
    change(records)
    data = write_records(tmp_path / "data.jsonl", records)
    out = tmp_path / "refined.jsonl"
    with pytest.raises(SystemExit) as e:
        refine_cmd.main(["--data", data, "--model", model_dir, "--out", str(out)])
    import re
    assert re.search(pattern, str(e.value)), str(e.value)
    assert not out.exists() and not (tmp_path / "refine_report.json").exists()


def test_a_critic_model_that_cannot_be_loaded(tmp_path, model_dir):
    data = write_records(tmp_path / "data.jsonl", CLI_RECORDS)
    out = tmp_path / "refined.jsonl"
    missing = tmp_path / "no-such-model"
    missing.mkdir()
    with pytest.raises(SystemExit) as e:
        refine_cmd.main(["--data", data, "--model", model_dir, "--critic-model", str(missing), "--out", str(out)])
    assert f"--critic-model '{missing}' cannot be loaded" in str(e.value) and "has no weights" in str(e.value)
    assert not out.exists() and not (tmp_path / "refined.jsonl.work").exists()


def test_without_a_terminal_each_stage_prints_progress_lines_by_prompt(tmp_path, monkeypatch, capsys):
    # under pytest the output is not a terminal: the bars are off, plain lines (done/total, rate, ETA) instead
    monkeypatch.setattr("minirlvr.engine.progress.PROGRESS_EVERY_S", 0.0)
    records = [tea_record(f"mix-{i}") for i in range(5)]
    (tmp_path / "w").mkdir()
    refine_cli.refine(records, ask_keep, scripted_sample([]), hard_reward, str(tmp_path / "w"), pilot_samples=2,
                      chunk=2)
    lines = capsys.readouterr().out.splitlines()
    for stage in ("critic", "pilot"):
        mine = [line for line in lines if line.startswith(f"refine {stage}: ")]
        assert [line.split()[2] for line in mine] == ["2/5", "4/5", "5/5"], lines
        assert all(" prompts/s" in line for line in mine) and all(", ETA " in line for line in mine[:-1])
