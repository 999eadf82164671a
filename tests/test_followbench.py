"""FollowBench (minirlvr/evaluation/followbench.py, followbench_rules.py): the rule checks level by level, written
from the official rules (a response that meets the first k-1 constraints and breaks the k-th passes exactly the
levels below k); the judge prompt, its parser, both scoring modes with scripted judges; HSR / SSR / CSL on
hand-built verdicts; the real data files; clear errors."""

import json
import os
import random
import re
from pathlib import Path

import pytest
from shared_data import SHARED as SHARED_DATA

from minirlvr.evaluation import followbench as fb
from minirlvr.evaluation import followbench_rules as rules
from minirlvr.reward.judge import Verdicts

# MINIRLVR_SHARED_DATA: the shared data folder when it is not beside the repository (e.g. a worktree)
DATA = Path(os.environ.get("MINIRLVR_SHARED_DATA", SHARED_DATA)) / "followbench"
needs_data = pytest.mark.skipif(not (DATA / "data").is_dir(), reason=f"FollowBench data not found in {DATA} (the "
                                                                     f"shared data folder beside the repository)")


def levels_passed(source, response, category="mixed", example_id=1):
    return [rules.check(category, source, example_id, lv, response, "") for lv in range(1, 6)]


def first_k_minus_1(k):
    return [lv < k for lv in range(1, 6)]


# ---------------------------------------------------------------------------------------------- cumulative rules
# (source, a response meeting all five constraints, {k: a response meeting constraints 1..k-1 and breaking k})
CUMULATIVE = [
    ("cnn_dailymail",
     ("Daniel Radcliffe of Harry Potter turns eighteen. The young actor keeps his money. His films have earned "
      "millions."),
     {1: "Daniel Radcliffe of Harry Potter turns eighteen. The young actor keeps his money.",
      2: "Daniel Radcliffe of Harry Potter turns eighteen on Monday and gets access to a fortune of many "
         "millions. The young actor keeps his money. His films have earned millions.",
      3: "Daniel Radcliffe of Harry Potters turns eighteen. The young actor keeps his money. His films have "
         "earned millions.",
      4: "Daniel Radcliffe of Harry Potter turns eighteen. The young actor avoids lavish spending. His films "
         "have earned millions.",
      5: "Daniel Radcliffe of Harry Potter turns eighteen. The young actor keeps his money. His films earned "
         "millions."}),
    ("xsum", "Clean-up operation is continuing across the Borders.",
     {1: "Clean-up operation is continuing. Across the Borders.",
      2: "Clean-up operation is continuing across the Borders and Dumfries and Galloway after the floods caused "
         "by Storm Frank hit the towns.",
      3: "Clean-up operation is continuing across Newton Stewart.",
      4: "Clean-up operation continues across the Borders.",
      5: "Clean-up work is continuing across the Borders, operations say."}),
    ("samsum", "Kim may try the technique to get more stuff done.",
     {1: "Kim may try it. Stuff gets done.",
      2: "Kim may try the technique that Tim recommended to her to get more stuff done today.",
      3: "Kim may try the technique to get more things done.",
      4: "Kim may stop Procrastinating to get more stuff done.",
      5: "Kim may try Tim's technique to get more stuff done."}),
    ("gigaword", "at least two dead in southern philippines blast",
     {1: "two dead in southern philippines blast today",
      2: "at least two dead in southern philippines blast.",
      3: "At least two dead in southern philippines blast",
      4: "two dead in southern philippines bus blast today",
      5: "at least two dead on southern philippines blast"}),
    ("arxiv", "We locate and edit factual associations within the activations of GPT models.",
     {1: "We locate factual associations. We edit the activations of GPT models.",
      2: "We locate and edit factual associations within the activations and the weights of large pretrained GPT "
         "models in this short paper.",
      3: "Our work locates and edits factual associations within the activations of GPT models.",
      4: "We locate and edit factual associations within the weights of GPT models.",
      5: "We locate and edit factual associations within the activations of transformer models."}),
]


@pytest.mark.parametrize("source,good,broken", CUMULATIVE, ids=[c[0] for c in CUMULATIVE])
def test_cumulative_rules_level_by_level(source, good, broken):
    assert levels_passed(source, good) == [True] * 5
    for k, response in broken.items():
        assert levels_passed(source, response) == first_k_minus_1(k), (k, response)


def test_cumulative_rules_at_their_boundaries():
    def words(n):
        return " ".join(["Clean-up", "operation", "is", "continuing"] + ["x"] * (n - 4)) + "."

    assert levels_passed("xsum", words(19))[:4] == [True] * 4
    assert levels_passed("xsum", words(20))[:2] == [True, False]  # fewer than 20 words (split on single spaces)

    def arxiv(n):
        return " ".join(["We", "edit", "activations"] + ["x"] * (n - 3)) + "."

    assert levels_passed("arxiv", arxiv(20)) == [True] * 5  # at most 20
    assert levels_passed("arxiv", arxiv(21)) == first_k_minus_1(2)
    assert levels_passed("samsum", "Kim may try the technique to get more stuff done") == first_k_minus_1(5)  # 0
    assert levels_passed("samsum", "Kim may try the technique to get more stuff done!?") == first_k_minus_1(5)  # 2
    assert levels_passed("samsum", "Kim may try the technique to get more stuffing done.") == first_k_minus_1(3)
    assert levels_passed("gigaword", "at least  two dead on southern philippines") == first_k_minus_1(5)  # 8 by " "
    lavish = ("A lavish Harry Potter turns eighteen. The young actor keeps his money. His lavish films have earned "
              "millions.")
    assert levels_passed("cnn_dailymail", lavish) == [True] * 5  # "lavish" is only banned in sentence 2


FORMAT_30 = "\n".join([
    "**1) Growth:** innovation creates new jobs and raises wages across many regional towns.",
    "**2) Trade:** innovation opens new export markets for small firms across the nation.",
    "**3) Health:** new medical devices shorten hospital stays for patients in rural areas.",
    "**4) Energy:** cheaper solar panels cut power bills for homes and for factories.",
    "**5) Skills:** workers learn new tools and move into better paid technical roles.",
])


def test_format_30_level_by_level():
    assert levels_passed(None, FORMAT_30, "format", 30) == [True] * 5
    lines = FORMAT_30.split("\n")
    broken = {1: FORMAT_30.replace("**", ""),
              2: FORMAT_30.replace("**5) Skills:**", "Skills -"),
              3: FORMAT_30.replace("new jobs and raises wages", "1.5 times more jobs and 2.5"),
              4: "\n".join(lines[:4] + ["**5) Skills:** workers learn new tools."]),
              5: FORMAT_30.replace("better paid", "high-ly paid")}
    for k, response in broken.items():
        assert levels_passed(None, response, "format", 30) == first_k_minus_1(k), k


def test_format_22_level_by_level_with_the_official_sentence_count():
    long = ("Wipe the wooden table with a soft and slightly damp cloth every single week so that dust and "
            "crumbs never build up on its surface")
    plain = "\n\n".join([long + ".", long + ". " + long + ".", long + "!"])
    assert levels_passed(None, plain, "format", 22) == [True, True, True, False, False]  # no number markers
    assert levels_passed(None, plain + "\n\n" + long + ".", "format", 22) == [False] * 5  # four paragraphs
    assert levels_passed(None, "\n\n".join([long + ". " + long + ". " + long + ".", long + ".", long + "."]),
                         "format", 22) == [True, False, False, False, False]  # 3 sentences in a paragraph
    numbered = "\n\n".join(f"{i}. {long}." for i in (1, 2, 3))
    # official quirk: "1." splits off a one-word sentence, so with number markers level 3 (> 20 words) fails
    assert levels_passed(None, numbered, "format", 22) == [True, True, False, False, False]
    assert rules.format_22("\n\n".join([long + ".", long + ".", long + ".", "Those are suggestions"]), 5) is False


# ---------------------------------------------------------------------------------------------- answer rules


@pytest.mark.parametrize("source,target,yes,no", [
    ("E2E", "name[The Mill], eatType[pub]", ["name[The Mill], eatType[pub]"],
     ["name[The Mill], eatType[pub]\n", "name[The Mill]"]),
    ("text_editing", "pples loved eting i.", ["pples loved eting i."], ["Pples loved eting i."]),
    ("WIKIEVENTS", "a died at b\nc died at d\ne", ["a died at b", "c died at d\na died at b"],
     ["a died at b\nx", "a died at b "]),
    ("CONLL2003", "['Kuwait', 'Iraq']", ["Iraq", "Kuwait"], ["Iraq.", "iraq", "Kuwait, Iraq"]),
    ("BBH_logical", "(A)", ["(A)", "Not (B) but (A)."], ["(A) or rather (B)", "A", "(a)"]),
    ("BBH_time", "12/31/1999", ["From 01/02/2003 back to 12/31/1999"], ["12/31/1999 or 01/01/2000", "12/31/99"]),
    ("gsm_8k", "$12", ["He pays $5, then $12", "$12.50"], ["$12 then $5", "12 dollars"]),
    ("self_made_space", "Space Needle", ["It is the Space Needle."], ["space needle"]),
])
def test_answer_rules_are_the_same_at_every_level(source, target, yes, no):
    for lv in range(1, 6):
        for r in yes:
            assert rules.check("content", source, 1, lv, r, target) is True, (r, lv)
        for r in no:
            assert rules.check("content", source, 1, lv, r, target) is False, (r, lv)


def test_example_template_matches_one_line_answers_only():
    target = "{instruction}\n{{'AI assistant': '{answer}'}}"
    assert rules.check_example("{'AI assistant': 'Brazil trip'}", target)
    assert rules.check_example("{'AI assistant': ''}", target)
    assert not rules.check_example("{'AI assistant': 'Brazil\ntrip'}", target)  # `.` stops at a line break
    assert not rules.check_example("{'AI assistant': 'Brazil trip'}\n", target)
    assert not rules.check_example("Sure: {'AI assistant': 'Brazil trip'}", target)
    assert not rules.check_example("{'AI assistant': '}", target)  # prefix and suffix may not overlap
    assert rules.check_example("Answer: 4.*2 x", "{instruction}\nAnswer: {answer}.*2 x")  # a literal .* is one too


def test_linear_scans_equal_the_official_patterns_on_random_text():
    rnd = random.Random(0)
    official_points = re.compile(r"\*\*[\d].+?:")
    official_list = re.compile(r"\[.*\]")
    for _ in range(3000):
        s = "".join(rnd.choice("**1:\n a[]") for _ in range(rnd.randint(0, 24)))
        assert rules.keyword_points(s) == len(official_points.findall(s)), repr(s)
        line = s.replace("\n", " ")
        m = official_list.search(line)
        start, end = line.find("["), line.rfind("]")
        assert (m.group(0) if m else None) == (line[start:end + 1] if 0 <= start < end else None), repr(line)


def test_rule_applies_to_the_official_sets():
    assert rules.rule_applies("example", "aeslc", 1, 1)
    assert rules.rule_applies("content", "E2E", 14, 3) and not rules.rule_applies("content", "E2E", 14, 0)
    assert rules.rule_applies("format", "koala", 30, 2) and not rules.rule_applies("format", "koala", 31, 2)
    assert not rules.rule_applies("mixed", "koala", 30, 2)  # only format items 22 and 30
    assert not rules.rule_applies("style", "oasst", 3, 1)


# ---------------------------------------------------------------------------------------------- judged part


def chain_items(category="situation", levels=3, example_id=5):
    return [fb.Item(category, example_id, lv, "self-made", f"instruction v{lv}", "", f"row {lv}")
            for lv in range(levels + 1)]


def test_judge_prompt_level_1_and_level_2_exactly():
    items = chain_items("situation", 2)
    ch = fb.chains(items)
    want2 = ("Given an initial instruction, we add one situation constraint (information to describe a specific "
             "situation/background) per time and obtain the final instruction with 2 additional constraints.\n\n"
             "#Initial Instruction#\ninstruction v0\n\n#Initial Instruction + 1 constraint#\ninstruction v1\n\n"
             "#Initial Instruction + 2 constraints#\ninstruction v2\n\n"
             "#Answer of Initial Instruction + 2 constraints#\nTHE ANSWER {x}\n\n"
             "#System#\n1) Please identify all 2 added constraints.\n2) For the 2 added constraints, discriminate if "
             "the #Answer of Initial Instruction + 2 constraints# satisfies each constraint.\n3) In the final line, "
             "only output a Python LIST with 2 elements ('YES' or 'NO') indicating whether the answer satisfies "
             "each constraint.")
    assert fb.judge_prompt(ch, items[2], "THE ANSWER {x}") == want2
    want1 = ("Given an initial instruction, we add one style constraint and obtain the final instruction with 1 "
             "additional constraint.\n\n#Initial Instruction#\ninstruction v0\n\n"
             "#Initial Instruction + 1 constraint#\ninstruction v1\n\n"
             "#Answer of Initial Instruction + 1 constraint#\nA\n\n"
             "#System#\n1) Please identify the 1 added constraint.\n2) Please descriminate if the #Answer of Initial "
             "Instruction + 1 constraint# satisfies the 1 added constraint.\n3) In the final line, only output a "
             "Python LIST with 1 element ('YES' or 'NO') indicating whether the answer satisfies the 1 added "
             "constraint.")
    style = chain_items("style", 1)
    assert fb.judge_prompt(fb.chains(style), style[1], "A") == want1
    assert "we add one constraint per time" in fb.judge_prompt(fb.chains(chain_items("mixed")),
                                                               chain_items("mixed")[3], "A")
    with pytest.raises(fb.FollowBenchError, match="row 3: example 5 lacks level"):
        fb.judge_prompt(fb.chains(chain_items()[2:]), chain_items()[3], "A")


@pytest.mark.parametrize("text,level,want", [
    ("The answer...\n['YES', 'NO', 'YES']", 3, (0, 2 / 3)),
    ("```\n['YES', 'YES']\n```", 2, (1, 1.0)),
    ("reasoning\n['YES', 'MAYBE', 'N/A', 'PARTIAL']", 4, (0, 0.25)),
    ("['YES']", 1, (1, 1.0)),
    ("It is NO", 1, (0, 0.0)),
    ("YES and NO", 1, (1, 1.0)),  # official: 'YES' is looked for first
    ("['YES', 'NO']\nThat is all.", 2, None),  # the list is not in the last line
    ("[YES, NO]", 2, None),
    ("['YES', 'NO']", 3, None),  # wrong length
    ("['YES', 'yes']", 2, None),  # lower case is not an official element
    ("maybe", 1, None),
    ("['YES', 'NO'] and [1]", 2, None),  # greedy [...] spans both
    ("[" * 100000 + "]" * 100000, 2, None),  # nesting deeper than the parser allows: unreadable, no crash
])
def test_parse_judge_answer(text, level, want):
    assert fb.parse_judge_answer(text, level) == want


def scored_items():
    """Two situation chains (judged) and one BBH_logical chain (rules), levels 0-5."""
    out = []
    for ex in (1, 2):
        out += [fb.Item("situation", ex, lv, "self-made", f"q{ex} v{lv}", "", f"s{ex} row {lv}") for lv in range(6)]
    out += [fb.Item("situation", 3, lv, "BBH_logical", f"p v{lv}", "(A)", f"b row {lv}") for lv in range(6)]
    return out


def test_score_official_rules_judge_unparseable_and_tables():
    items = scored_items()
    responses = [None if it.level == 0 else ("(A)" if it.level <= 2 else "(B)") if it.source == "BBH_logical"
                 else f"resp {it.example_id}.{it.level}" for it in items]
    asked = []

    def ask(prompt):
        asked.append(prompt)
        ex, lv = re.search(r"resp (\d)\.(\d)", prompt).groups()
        lv = int(lv)
        if ex == "1":  # satisfies everything up to level 3, then misses one constraint
            return str(["YES"] * lv if lv <= 3 else ["YES"] * (lv - 1) + ["NO"])
        return "I cannot say" if lv == 2 else str(["YES"] * lv)  # level 2 unreadable

    v = fb.score_official(items, responses, ask)
    assert len(asked) == 10 and len(v) == 15  # the rule chain is never asked
    assert all("#Initial Instruction#\nq" in p for p in asked)
    t = fb.tables(v)
    assert t["unparseable"]["situation"] == {1: 0, 2: 1, 3: 0, 4: 0, 5: 0}
    # level 2: ex1 yes, ex2 unreadable (0, not -1), rules (A) yes
    assert t["HSR"]["situation"][2] == pytest.approx(100 * 2 / 3)
    assert t["HSR"]["situation"][4] == pytest.approx(100 * 1 / 3)  # ex2 only
    assert t["SSR"]["situation"][4] == pytest.approx(100 * (3 / 4 + 1 + 0) / 3)
    assert t["CSL"]["situation"] == pytest.approx((3 + 1 + 2) / 3)  # ex1: 3; ex2: 1 (level 2 unreadable); rules: 2
    assert t["HSR"]["avg"] == t["HSR"]["situation"] and t["CSL"]["avg"] == t["CSL"]["situation"]
    md = fb.format_tables(t)
    assert "| situation | 100.00 | 66.67 | 66.67 | 33.33 | 33.33 | 1 |" in md and "| levels | 2.0 | 2.0 |" in md


def test_score_per_constraint_asks_each_added_constraint():
    items = scored_items()
    responses = [None if it.level == 0 else "(A)" if it.source == "BBH_logical" else "r" for it in items]

    class Judge:
        """Kit interface: says no to the constraint added at level 3 (v2 -> v3) of example 1, only to it."""

        def __init__(self):
            self.items = []

        def check(self, its):
            self.items += its
            ok = [[not c.endswith("q1 v3\n>>>") for c in cs] for _, _, cs in its]
            return Verdicts(ok=ok, parsed=[[True] * len(r) for r in ok], answers=[["a"] * len(r) for r in ok])

    judge = Judge()
    v = fb.score_per_constraint(items, responses, judge)
    assert len(judge.items) == 10 and [len(cs) for _, _, cs in judge.items[:5]] == [1, 2, 3, 4, 5]
    rec, _, cs = judge.items[2]
    assert rec == {"prompt": "q1 v3"} and "q1 v1" in cs[1] and "q1 v2" in cs[1] and "q1 v2\n>>>" in cs[2]
    ex1 = {x.level: (x.hard, x.soft) for x in v if x.example_id == 1}
    assert ex1 == {1: (1, 1.0), 2: (1, 1.0), 3: (0, 2 / 3), 4: (0, 3 / 4), 5: (0, 4 / 5)}
    assert fb.tables(v)["CSL"]["situation"] == pytest.approx((2 + 5 + 5) / 3)


def test_chinese_rule_items_are_refused_with_a_reason():
    it = fb.Item("situation", 3, 1, "BBH_logical", "p", "(A)", "data_zh/x.json: row 7", language="zh")
    with pytest.raises(fb.FollowBenchError, match="row 7: the Chinese rule checks"):
        fb.rule_verdict(it, "(A)")


# ---------------------------------------------------------------------------------------------- data and errors


@needs_data
def test_reads_the_released_data():
    items = fb.read_folder(DATA / "data")
    assert len(items) == 944
    scored = [it for it in items if it.level > 0]
    assert sum(map(fb.by_rule, scored)) == 350 and len(scored) - 350 == 470  # 200 example + 150 other rule items
    ch = fb.chains(items)
    judged = [it for it in scored if not fb.by_rule(it)]
    assert all(fb.judge_prompt(ch, it, "x").count("#Initial Instruction") == it.level + 1 for it in judged)
    zh = fb.read_folder(DATA / "data_zh")
    assert zh[0].language == "zh" and len(zh) == 908


def test_errors_name_file_row_and_field(tmp_path):
    good = {"example_id": 1, "category": "style", "source": "x", "level": 0, "instruction": "i", "target": ""}
    cases = [({**good, "level": 7}, "field 'level' must be 0-5"),
             ({**good, "level": "1"}, "field 'level' missing or not a int"),
             ({k: v for k, v in good.items() if k != "instruction"}, "field 'instruction'"),
             ({**good, "level": 1, "instruction": " "}, "field 'instruction' is empty"),
             (good, "field 'level': example 1 has level 0 twice")]
    path = tmp_path / "style_constraints.json"
    for bad, says in cases:
        path.write_text(json.dumps([good, bad]), encoding="utf-8")
        with pytest.raises(fb.FollowBenchError) as e:
            fb.read_category(path)
        assert "style_constraints.json: row 1: " + says in str(e.value)
    ex = tmp_path / "example_constraints.json"
    ex.write_text(json.dumps([{**good, "level": 1, "target": "{instruction}\nno placeholder"}]), encoding="utf-8")
    with pytest.raises(fb.FollowBenchError, match=r"row 0: field 'target' has no \{answer\}"):
        fb.read_category(ex)
    path.write_text('[{"level": 0,\n "x": ]', encoding="utf-8")
    with pytest.raises(fb.FollowBenchError, match="line 2"):
        fb.read_category(path)
