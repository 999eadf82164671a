"""CFBench (minirlvr/evaluation/cfbench.py): the parsers and metrics against the 60 released GPT-4o judgements,
the official metric rules and the fallback bug on hand-built answers, both scoring modes with scripted judges, the
audit's figures with fake judges whose answers are known, and clear errors on malformed files."""

import glob
import hashlib
import json
import os
from pathlib import Path

import pytest
from shared_data import SHARED as SHARED_DATA

from minirlvr.evaluation import cfbench as cf
from minirlvr.reward.judge import Verdicts

# MINIRLVR_SHARED_DATA: the shared data folder when it is not beside the repository (e.g. a worktree)
SHARED = Path(os.environ.get("MINIRLVR_SHARED_DATA", SHARED_DATA)) / "cfbench"
JUDGE_FILES = sorted(glob.glob(str(SHARED / "judge" / "*_eval.json")))
needs_data = pytest.mark.skipif(not JUDGE_FILES, reason=f"CFBench's released judgements not found in {SHARED} "
                                                        f"(the shared data folder beside the repository)")


def item(needs, gold="", split="hard"):
    crits = [[f"criterion {j}", need, "t", "s"] for j, need in enumerate(needs)]
    return cf._item({"idx": 7, "prompt": "Write.", "gold": gold, "split": split, "criteria": crits}, "test")


def answer(it, scores, sep="\n\n"):
    return sep.join(f"{c.text}\t{s}" for c, s in zip(it.criteria, scores))


# ---------------------------------------------------------------------------------------------- agreement


@needs_data
def test_parser_and_metrics_reproduce_all_60_released_judgements():
    judgements = [x for f in JUDGE_FILES for x in cf.read_judgements(f)]
    assert len(judgements) == 60
    fallback = 0
    for it, rec in judgements:
        p = cf.parse_official(rec["judge_response"], it)
        where = f"item {it.idx} ({rec.get('infer_model')})"
        assert p.scores == rec["judge_score"], where
        assert p.parsing == rec["judge_parsing"], where
        assert cf.item_metrics(p.scores, p.parsing, it) == rec["judge_metric"], where
        fallback += p.parsing != "1"
    assert fallback == 4  # the released files: 56 strict parses, 4 by the fallback


@needs_data
def test_released_verdicts_are_the_283_strict_ones_with_55_violations():
    refs = cf.released_verdicts([x for f in JUDGE_FILES for x in cf.read_judgements(f)])
    assert len(refs) == 56
    assert sum(len(v) for _, _, v in refs) == 283
    assert sum(v.count(0) for _, _, v in refs) == 55


@needs_data
def test_reads_the_data_file():
    items = cf.read_items(SHARED / "cfbench_data.json")
    assert len(items) == 1000 and sum(len(i.criteria) for i in items) == 4237
    assert sum(i.split == "easy" for i in items) == 500
    assert {c.need for i in items for c in i.criteria} == {"primary", "secondary"}


# ---------------------------------------------------------------------------------------------- parsers


def test_strict_parser_needs_every_criterion_verbatim_with_0_or_1():
    it = item(["主需", "次需", "次需"])
    assert cf.parse_strict(answer(it, [1, 0, 1]), it) == ["1", "0", "1"]
    assert cf.parse_strict(answer(it, [1, 0, 1]) + "\n", it) == ["1", "0", "1"]  # score stripped
    assert cf.parse_strict(answer(it, [1, 0]), it) is None  # a criterion missing
    assert cf.parse_strict(answer(it, [1, 0, 1]).replace("criterion 1", "criterion 1。"), it) is None
    assert cf.parse_strict(answer(it, [1, 2, 1]), it) is None  # not 0/1
    assert cf.parse_strict(answer(it, [1, "yes", 1]), it) is None
    assert cf.parse_strict(answer(it, [1, 0, 1], sep="\n"), it) is None  # lines not separated by blank lines


def test_fallback_drops_zeros_as_released_and_keeps_them_corrected():
    it = item(["主需", "次需", "次需", "次需"])
    text = answer(it, [1, 0, 1, 0]).replace("criterion 0", "criterion zero")  # strict parse fails
    buggy = cf.parse_official(text, it)
    assert buggy == cf.Parsed(["1", "1"], "0")
    assert cf.item_metrics(buggy.scores, buggy.parsing, it) == {"CSR": 1.0, "ISR": 1, "PSR": 1}  # the bug
    fixed = cf.parse_official(text, it, corrected=True)
    assert fixed == cf.Parsed(["1", "0", "1", "0"], "0")
    assert cf.item_metrics(fixed.scores, fixed.parsing, it) == {"CSR": 0.5, "ISR": 0, "PSR": 0}
    assert cf.parse_official("criterion 0\tmaybe\nnothing here", it) == cf.Parsed(["0"], "-1")
    only_zeros = answer(it, [0, 0]).replace("criterion 0", "x")
    assert cf.parse_official(only_zeros, it) == cf.Parsed(["0"], "-1")  # every line dropped
    assert cf.parse_official(only_zeros, it, corrected=True) == cf.Parsed(["0", "0"], "0")


# ---------------------------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("needs,scores,want", [
    (["主需", "次需", "次需"], [1, 1, 1], {"CSR": 1.0, "ISR": 1, "PSR": 1}),
    (["主需", "次需", "次需"], [0, 1, 1], {"CSR": 0.67, "ISR": 0, "PSR": 0}),  # a primary fails
    (["主需", "主需", "次需"], [1, 1, 0], {"CSR": 0.67, "ISR": 0, "PSR": 0}),  # 0.5 + 0.5 * 0 = 0.5
    (["主需"] + ["次需"] * 6, [1, 1, 1, 1, 1, 1, 0], {"CSR": 0.86, "ISR": 0, "PSR": 1}),  # 0.5 + 0.5 * 0.83
    (["主需"] + ["次需"] * 5, [1, 1, 1, 1, 1, 0], {"CSR": 0.83, "ISR": 0, "PSR": 1}),  # 0.5 + 0.5 * 0.8 = 0.9
    (["主需", "次需", "次需"], [1, 1, 0], {"CSR": 0.67, "ISR": 0, "PSR": 0}),  # 0.5 + 0.5 * 0.5 = 0.75
    (["主需", "主需"], [1, 1], {"CSR": 1.0, "ISR": 1, "PSR": 1}),  # all primary
    (["次需"] * 5, [1, 1, 1, 1, 0], {"CSR": 0.8, "ISR": 0, "PSR": 0}),  # only secondary: CSR > 0.8 needed
    (["次需"] * 6, [1, 1, 1, 1, 1, 0], {"CSR": 0.83, "ISR": 0, "PSR": 1}),
])
def test_official_metric_rules(needs, scores, want):
    assert cf.item_metrics([str(s) for s in scores], "1", item(needs)) == want


def test_fallback_and_failed_parsing_metrics():
    it = item(["主需", "次需", "次需"])
    assert cf.item_metrics(["0"], "-1", it) == {"CSR": 0.0, "ISR": 0, "PSR": 0}
    assert cf.item_metrics(["1", "1", "1", "1", "1"], "0", it)["PSR"] == 1  # fallback: CSR > 0.8
    assert cf.item_metrics(["1", "1", "1", "1", "0"], "0", it)["PSR"] == 0


def test_aggregate_is_the_rounded_mean_overall_and_per_split():
    items = [item(["主需"], split="easy"), item(["主需"], split="hard"), item(["主需"], split="hard")]
    ms = [{"CSR": 1.0, "ISR": 1, "PSR": 1}, {"CSR": 0.5, "ISR": 0, "PSR": 0}, {"CSR": 0.25, "ISR": 0, "PSR": 1}]
    t = cf.aggregate(items, ms)
    assert t["CSR"] == 0.58 and t["ISR"] == 0.33 and t["PSR"] == 0.67
    assert t["CSR_easy"] == 1.0 and t["CSR_hard"] == 0.38 and t["PSR_hard"] == 0.5  # 0.375 -> 0.38 (numpy)


# ---------------------------------------------------------------------------------------------- prompts, scoring


def test_official_prompt_fills_each_field_once():
    it = item(["主需", "次需"], gold="GOLD {response}")
    p = cf.official_prompt(it, "RESP {criteria}")
    assert ("[参考答案]: GOLD {response}\n\n[模型答案]: RESP {criteria}\n\n[评估标准]: criterion 0\n\ncriterion 1\n\n"
            in p)
    assert p.startswith("\n我想让你扮演一个质量评估器的角色") and p.endswith("[你的评估]: \n")
    assert "[样例1]" in p and "\t1\n\n不存在其他冗余信息，引号可忽略\t0" in p


def test_official_prompt_is_cfbench_verbatim():
    # sha256 of CFBench's own prompt (code/evalaute.py, gpt_judge_for_cfbench("P", "G", "R", "C1\n\nC2")), computed
    # with the official script: one character changed in our copy of the template changes it.
    it = cf._item({"prompt": "P", "gold": "G", "split": "easy", "criteria": [["C1", "主需"], ["C2", "次需"]]}, "x")
    digest = hashlib.sha256(cf.official_prompt(it, "R").encode()).hexdigest()
    assert digest == "1df7dfaa3937424340ea0230abe20f62a9e65eabaa68c8b822e0caeb1d56064c"


class Scripted:
    """ask(prompt) -> str: answers from a list, in order, recording the prompts."""

    def __init__(self, answers):
        self.answers, self.prompts = list(answers), []

    def __call__(self, prompt):
        self.prompts.append(prompt)
        return self.answers.pop(0)


def test_official_mode_retries_until_strict_then_falls_back_and_counts_it():
    a, b = item(["主需", "次需"]), item(["次需", "次需", "次需"], split="easy")
    good_a = answer(a, [1, 0])
    bad_b = answer(b, [1, 0, 1]).replace("criterion 0", "?")  # never strict: fallback
    ask = Scripted(["garbage", bad_b, good_a, bad_b, bad_b])
    rep = cf.score_official([a, b], ["ra", "rb"], ask, rounds=3)
    assert rep.calls == 5 and rep.fallback == 1 and rep.parsing == ["1", "0"]
    assert rep.scores == [["1", "0"], ["1", "1"]]  # b: its 0 dropped, as released
    assert rep.metrics[1] == {"CSR": 1.0, "ISR": 1, "PSR": 1}
    assert "[模型答案]: rb" in ask.prompts[-1]
    rep2 = cf.score_official([a, b], ["ra", "rb"], Scripted([good_a, bad_b]), rounds=1, corrected=True)
    assert rep2.scores[1] == ["1", "0", "1"] and rep2.metrics[1]["CSR"] == 0.67 and "corrected" in rep2.label


class Judge:
    """The kit's judge interface; says "not satisfied" to criteria whose text is in `no`, records the items."""

    def __init__(self, no=(), unreadable=()):
        self.no, self.unreadable, self.items = set(no), set(unreadable), []

    def check(self, items):
        self.items += items
        ok = [[c not in self.no and c not in self.unreadable for c in cs] for _, _, cs in items]
        parsed = [[c not in self.unreadable for c in cs] for _, _, cs in items]
        return Verdicts(ok=ok, parsed=parsed, calls=sum(map(len, ok)),
                        unparseable=sum(not p for row in parsed for p in row), answers=[["a"] * len(r) for r in ok])


def test_pointwise_mode_asks_each_criterion_with_the_gold_answer():
    a, b = item(["主需", "次需"], gold="the gold"), item(["次需", "次需"])
    judge = Judge(no={"criterion 1"})
    rep = cf.score_pointwise([a, b], ["ra", "rb"], judge)
    assert rep.scores == [[1, 0], [1, 0]]
    assert rep.metrics[0] == {"CSR": 0.5, "ISR": 0, "PSR": 0}
    assert judge.items[0][0]["prompt"].endswith("[参考答案 / reference answer]\nthe gold")
    assert judge.items[1][0]["prompt"] == "Write."  # no gold: not shown
    assert judge.items[0][1:] == ("ra", ["criterion 0", "criterion 1"])
    rep = cf.score_pointwise([a], ["ra"], Judge(unreadable={"criterion 0"}))
    assert rep.unparseable == 1 and rep.scores == [[0, 1]]  # unreadable scores 0


# ---------------------------------------------------------------------------------------------- audit


class Oracle:
    """Answers with GPT-4o's released verdict, except that it passes the first `miss` violations."""

    def __init__(self, refs, miss=0):
        self.truth = {(cf.pointwise_record(it)["prompt"], resp, c.text): v
                      for it, resp, vs in refs for c, v in zip(it.criteria, vs)}
        self.miss = miss

    def check(self, items):
        ok, left = [], self.miss
        for rec, resp, cs in items:
            row = []
            for c in cs:
                v = self.truth[(rec["prompt"], resp, c)] == 1
                if not v and left:
                    v, left = True, left - 1
                row.append(v)
            ok.append(row)
        return Verdicts(ok=ok, parsed=[[True] * len(r) for r in ok], answers=[["x"] * len(r) for r in ok])


@needs_data
def test_audit_figures_with_fake_judges():
    judgements = [x for f in JUDGE_FILES for x in cf.read_judgements(f)]
    refs = cf.released_verdicts(judgements)
    fig, rows = cf.audit(Oracle(refs, miss=11), judgements)
    assert fig["n"] == 283 and fig["violated"] == 55 and len(rows) == 283
    assert fig["recall_violated"] == pytest.approx(44 / 55)
    assert fig["agreement"] == pytest.approx(272 / 283)
    assert fig["precision_violated"] == 1.0 and fig["unparseable"] == 0

    class AllYes:
        def check(self, items):
            ok = [[True] * len(cs) for _, _, cs in items]
            return Verdicts(ok=ok, parsed=[[True] * len(r) for r in ok], answers=[[""] * len(r) for r in ok])

    fig, _ = cf.audit(AllYes(), judgements)
    assert fig["recall_violated"] == 0.0 and fig["agreement"] == pytest.approx(228 / 283)


@needs_data
def test_audit_official_with_scripted_answers():
    judgements = [x for f in JUDGE_FILES for x in cf.read_judgements(f)]
    by_response = {resp: (it, v) for it, resp, v in cf.released_verdicts(judgements)}

    def echo(prompt):  # GPT-4o's own verdicts in the official format, except item idx 0's answers are unreadable
        resp = prompt.rsplit("[模型答案]: ", 1)[1].rsplit("\n\n[评估标准]: ", 1)[0]
        it, v = by_response[resp]
        return "???" if it.idx == 0 else "\n\n".join(f"{c.text}\t{s}" for c, s in zip(it.criteria, v))

    fig, rows = cf.audit_official(echo, judgements)
    zero = [r for r in rows if r["idx"] == 0]
    assert fig["n"] == 283 and fig["unparseable"] == len(zero) > 0
    wrong = sum(r["gpt4o"] == 1 for r in zero)  # unreadable: scored "not satisfied"
    assert fig["agreement"] == pytest.approx(1 - wrong / 283)
    assert fig["recall_violated"] == 1.0 and fig["recall_violated_readable"] == 1.0


# ---------------------------------------------------------------------------------------------- errors


def test_errors_name_file_item_and_field(tmp_path):
    good = {"idx": 0, "prompt": "p", "gold": "", "split": "easy", "criteria": [["c", "主需", "t", "s"]]}
    cases = [({**good, "split": "medium"}, "field 'split'"),
             ({**good, "criteria": [["c", "primary"]]}, "field 'criteria'[0][1]"),
             ({**good, "criteria": []}, "field 'criteria'"),
             ({k: v for k, v in good.items() if k != "prompt"}, "missing field 'prompt'"),
             ({**good, "gold": 3}, "field 'gold'")]
    for bad, says in cases:
        path = tmp_path / "d.json"
        path.write_text(json.dumps([good, bad]), encoding="utf-8")
        with pytest.raises(cf.CFBenchError) as e:
            cf.read_items(path)
        assert "d.json: item 1" in str(e.value) and says in str(e.value)
    path.write_text('[{"idx": 0,\n "prompt": }]', encoding="utf-8")
    with pytest.raises(cf.CFBenchError, match=r"d\.json: line 2"):
        cf.read_items(path)
    path.write_text(json.dumps([{**good, "response": "r"}]), encoding="utf-8")
    with pytest.raises(cf.CFBenchError, match="item 0: field 'judge_response'"):
        cf.read_judgements(path)
