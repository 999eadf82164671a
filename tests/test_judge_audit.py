"""`python run.py judge-audit`: precision / recall / recall on violations on a hand-built case with known counts,
per constraint type with a scripted judge, and end to end on a tiny model (a response file and `generate`)."""

import json
import os

import pytest

from minirlvr.commands import judge_audit as judge_audit_cmd
from minirlvr import verifiers

from minirlvr.evaluation import judge_audit
from minirlvr.reward.judge import Verdicts

nan = float("nan")


def test_metrics_on_a_hand_built_case():
    truth = [True, True, True, False, False, False, False, True]
    judged = [True, True, False, True, False, False, True, True]
    parsed = [True, True, True, True, True, False, True, True]  # #5: unreadable, scored not satisfied
    m = judge_audit.metrics(judged, truth, parsed)
    assert m["n"] == 8 and m["violated"] == 4 and m["judged_violated"] == 3 and m["unparseable"] == 1
    assert m["recall_violated"] == pytest.approx(2 / 4)  # violated 3,4,5,6; judged not satisfied 4,5
    assert m["precision_violated"] == pytest.approx(2 / 3)  # judged not satisfied 2,4,5; violated 4,5
    assert m["precision"] == pytest.approx(3 / 5)  # judged satisfied 0,1,3,6,7; truly satisfied 0,1,7
    assert m["recall"] == pytest.approx(3 / 4)  # truly satisfied 0,1,2,7; judged satisfied 0,1,7
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["recall_violated_readable"] == pytest.approx(1 / 3)  # readable violations 3,4,6; caught 4
    none = judge_audit.metrics([True], [True], [True])
    assert none["recall_violated"] != none["recall_violated"] and none["precision"] == 1.0  # no violation: undefined


class ByRule:
    """Judge interface: says "not satisfied" only for the lowercase constraint."""

    def check(self, items):
        ok = [["lowercase" not in c for c in cs] for _, _, cs in items]
        return Verdicts(ok=ok, parsed=[[True] * len(r) for r in ok], calls=len(items), answers=[["x"] * len(r)
                                                                                                for r in ok])


def test_per_type_metrics_and_rows():
    rec = {"key": 7, "prompt": "p", "instruction_id_list": ["change_case:english_lowercase", "keywords:existence"],
           "kwargs": [{}, {"keywords": ["tea"]}]}
    plain = {"key": 8, "prompt": "q"}  # no hard constraint: not audited
    texts = ["I like tea in the morning.", "i like coffee today, my friend.", "anything"]
    qs = judge_audit.questions([rec, plain], [(0, texts[0]), (0, texts[1]), (1, texts[2])])
    assert len(qs) == 2 and qs[0][2] == [verifiers.describe("change_case:english_lowercase", {}),
                                         verifiers.describe("keywords:existence", {"keywords": ["tea"]})]
    overall, per_type, rows = judge_audit.audit_mode(ByRule(), qs)
    # truth: the first violates lowercase and has tea; the second is lowercase and lacks tea
    assert [(r["id"], r["truth"], r["judged"]) for r in rows] == [
        ("change_case:english_lowercase", False, False), ("keywords:existence", True, True),
        ("change_case:english_lowercase", True, False), ("keywords:existence", False, True)]
    assert per_type["change_case:english_lowercase"]["recall_violated"] == 1.0
    assert per_type["keywords:existence"]["recall_violated"] == 0.0
    assert overall["recall_violated"] == 0.5 and overall["n"] == 4 and overall["calls"] == 2
    assert all(r["key"] == 7 for r in rows)


# ---------------------------------------------------------------------------------------------- end to end

WORDS = ["yes", "no", "tea", "1.", "2."] + [f"w{i}" for i in range(12)]
RECORDS = [{"key": i, "prompt": f"w{i} w{i + 1}",
            "instruction_id_list": ["keywords:existence", "change_case:english_lowercase"],
            "kwargs": [{"keywords": ["tea"]}, {}]} for i in range(5)] + [{"key": 9, "prompt": "w9"}]
RESPONSES = ["w1 tea", "W2 TEA", "w3", "W4", "tea tea"]


@pytest.fixture(scope="module")
def folder(tiny_folder):
    return tiny_folder(WORDS, seed=1)


def files(tmp_path):
    data, resp = tmp_path / "data.jsonl", tmp_path / "resp.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    resp.write_text("".join(json.dumps({"prompt": r["prompt"], "response": t}) + "\n"
                            for r, t in zip(RECORDS, RESPONSES)))
    return str(data), str(resp)


def test_end_to_end_on_a_tiny_model(tmp_path, folder, capsys):
    data, resp = files(tmp_path)
    out = tmp_path / "audit"
    result = judge_audit_cmd.main(["--model", folder, "--data", data, "--responses", resp, "--out", str(out)])
    for name in ("audit.md", "audit.json", "recall.png"):
        assert os.path.getsize(out / name) > 0
    saved = json.load(open(out / "audit.json"))
    assert saved["n_responses"] == 5 and saved["n_questions"] == 10 and saved["records_without_response"] == 1
    for mode in ("pointwise", "batched"):
        rows = saved["verdicts"][mode]
        assert len(rows) == 10
        for r in rows:  # truth comes from the verifiers
            k = r["key"]
            kw = RECORDS[k]["kwargs"][RECORDS[k]["instruction_id_list"].index(r["id"])]
            assert r["truth"] == verifiers.check(r["id"], RESPONSES[k], kw)
            assert r["judged"] is False or r["parsed"]  # an unreadable answer is never a pass
        m = judge_audit.metrics([r["judged"] for r in rows], [r["truth"] for r in rows], [r["parsed"] for r in rows])
        got = result["modes"][mode]["overall"]
        assert all(got[k] == pytest.approx(v, nan_ok=True) for k, v in m.items())
    printed = capsys.readouterr().out
    assert "paper (Qwen3-32B judge)" in printed and "55-59%" in printed and "21-31%" in printed
    table = open(out / "audit.md").read()
    assert "| pointwise | all | 10 |" in table and "| batched | keywords:existence | 5 |" in table
    assert "positive class = violated" in table


def test_generate_limit_and_one_mode(tmp_path, folder):
    data, _ = files(tmp_path)
    out = tmp_path / "gen"
    result = judge_audit_cmd.main(["--model", folder, "--data", data, "--responses", "generate", "--limit", "3",
                               "--modes", "batched", "--out", str(out), "--max-new-tokens", "4"])
    generated = [json.loads(line) for line in open(out / "responses.jsonl")]
    assert [g["prompt"] for g in generated] == [r["prompt"] for r in RECORDS[:3]]
    assert list(result["modes"]) == ["batched"] and result["n_questions"] == 6


def test_bad_input(tmp_path, folder):
    data, resp = files(tmp_path)
    with pytest.raises(SystemExit, match="--modes: expected a comma-separated subset"):
        judge_audit_cmd.main(["--model", folder, "--data", data, "--responses", resp, "--modes", "listwise"])
    tpl = tmp_path / "tpl.txt"
    tpl.write_text("Is {response} ok?")
    with pytest.raises(SystemExit, match=r"--template-pointwise: the pointwise judge template lacks .*\{constraint\}"):
        judge_audit_cmd.main(["--model", folder, "--data", data, "--responses", resp, "--template-pointwise", str(tpl)])
    with pytest.raises(SystemExit, match="has no weights"):
        judge_audit_cmd.main(["--model", str(tmp_path), "--data", data, "--responses", resp])
    with pytest.raises(SystemExit, match="--limit must be >= 1"):
        judge_audit_cmd.main(["--model", folder, "--data", data, "--responses", resp, "--limit", "0"])
    only_soft = tmp_path / "soft.jsonl"
    only_soft.write_text(json.dumps({"prompt": "w1 w2", "soft_constraints": ["Be warm."]}) + "\n")
    with pytest.raises(SystemExit, match="nothing to audit"):
        judge_audit_cmd.main(["--model", folder, "--data", str(only_soft), "--responses", resp])
