"""FollowBench (Jiang et al. 2024, YJiangcm/FollowBench): instructions evolved in five levels, one constraint
added per level, in six categories (content, situation, style, format, example, mixed). A level-L response must
satisfy all L added constraints. Some items are scored by rules (followbench_rules.py), the rest by a judge:

    items = read_folder("followbench/data")                  # Item per row, levels 0-5; chains for the judge
    todo = [it for it in items if it.level > 0]               # the prompts a model answers
    prompt = judge_prompt(chains, item, response)             # the official prompt of the item's category
    parse_judge_answer(answer, level) -> (hard, soft) | None  # the official final-line list of L YES/NO
    verdicts = score_official(items, responses, ask)          # rules + ask(prompt) -> str per judged item
    verdicts = score_per_constraint(items, responses, judge)  # rules + one question per added constraint
    t = tables(verdicts)                                      # HSR / SSR per level and category, CSL

The official judge prompt shows the judge every evolved version of the instruction, level 0 to L, and the answer,
and asks for a Python list of L 'YES'/'NO' in its last line. HSR (hard satisfaction rate) at level L: the share of
level-L responses that satisfy all their constraints; SSR (soft): the mean share of constraints satisfied; a rule
item counts 0/1 in both. CSL (consistent satisfaction levels): per instruction, how many levels from level 1
upwards are satisfied before the first failure (0-5), averaged. The official tables give HSR/SSR in percent per
category and level, and CSL per category; `tables` adds the unweighted mean over categories.

Unreadable judge answers: the official parser returns -1 for them and the official code adds that -1 to the sums
(a bug: one unreadable answer costs more than a failure). Here they are counted (`Verdict.parsed`,
`tables()["unparseable"]`) and scored as not satisfied (0), as the kit's judges do. The judge's list is read with
ast.literal_eval, never eval. The per-constraint variant asks the kit's judge interface one question per added
constraint (described as the change from one version of the instruction to the next, since the data does not
state the constraints separately); hard = all yes, soft = the share of yes.
Chinese data (data_zh) can be judged; its rule checks (code_zh) differ and are not implemented: scoring a Chinese
rule item raises. This file calls no model itself and writes no files.
"""

import ast
import json
import os
from dataclasses import dataclass

from minirlvr.data import DataError
from minirlvr.evaluation import followbench_rules as rules

CATEGORIES = ("content", "situation", "style", "format", "example", "mixed")
LEVELS = (1, 2, 3, 4, 5)
# How each category's official prompt names the added constraint.
KIND = {"content": "content constraint",
        "situation": "situation constraint (information to describe a specific situation/background)",
        "style": "style constraint", "format": "format constraint", "mixed": "constraint"}
ZERO_WORDS = ("NO", "PARTIAL", "MAYBE", "UNKNOWN", "N/A")  # list elements the official parser reads as "no"


class FollowBenchError(DataError):
    """A malformed FollowBench file or an item that cannot be scored: names the file, the row and the field."""


@dataclass
class Item:
    category: str  # the file's constraint type (content, ..., mixed); "mixed" rows tag their own kinds
    example_id: int
    level: int
    source: str
    instruction: str
    target: str
    where: str  # "file: row i", for errors
    language: str = "en"


@dataclass
class Verdict:
    category: str
    example_id: int
    level: int
    hard: int  # 1: every constraint satisfied
    soft: float  # the share of constraints satisfied
    by: str  # "rule" or "judge"
    parsed: bool = True  # False: the judge's answer could not be read (scored 0)
    answer: object = None  # the judge's raw text (official) or texts (per constraint)


# ---------------------------------------------------------------------------------------------- reading


def read_category(path, category=None, language="en"):
    """One FollowBench file (<category>_constraints.json, a JSON list) as Items."""
    category = category or os.path.basename(path).split("_constraints")[0]
    if category not in CATEGORIES:
        raise FollowBenchError(f"{path}: unknown category {category!r} (expected one of {CATEGORIES})")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise FollowBenchError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, list):
        raise FollowBenchError(f"{path}: expected a JSON list of rows, got {type(data).__name__}")
    out, seen = [], set()
    for i, raw in enumerate(data):
        where = f"{path}: row {i}"
        if not isinstance(raw, dict):
            raise FollowBenchError(f"{where}: expected an object")
        for key, kind in (("example_id", int), ("level", int), ("source", str), ("instruction", str),
                          ("target", str)):
            if not isinstance(raw.get(key), kind) or isinstance(raw.get(key), bool):
                raise FollowBenchError(f"{where}: field {key!r} missing or not a {kind.__name__}")
        if raw["level"] not in (0, *LEVELS):
            raise FollowBenchError(f"{where}: field 'level' must be 0-5, got {raw['level']}")
        if raw["level"] > 0 and not raw["instruction"].strip():
            raise FollowBenchError(f"{where}: field 'instruction' is empty at level {raw['level']}")
        key = (raw["example_id"], raw["level"])
        if key in seen:
            raise FollowBenchError(f"{where}: field 'level': example {key[0]} has level {key[1]} twice")
        seen.add(key)
        if category == "example" and len(rules.example_template(raw["target"])) < 2:
            raise FollowBenchError(f"{where}: field 'target' has no {{answer}} placeholder")
        out.append(Item(category, raw["example_id"], raw["level"], raw["source"], raw["instruction"],
                        raw["target"], where, language))
    return out


def read_folder(folder, categories=CATEGORIES, language=None):
    """Every category file of a FollowBench data folder (data/ or data_zh/: the language is guessed from the
    name unless given)."""
    language = language or ("zh" if os.path.basename(os.path.normpath(folder)).endswith("_zh") else "en")
    out = []
    for c in categories:
        path = os.path.join(folder, f"{c}_constraints.json")
        if not os.path.exists(path):
            raise FollowBenchError(f"{folder}: no {c}_constraints.json")
        out += read_category(path, c, language)
    return out


def chains(items):
    """{(category, example_id): {level: instruction}}: every evolved version of each instruction."""
    out = {}
    for it in items:
        out.setdefault((it.category, it.example_id), {})[it.level] = it.instruction
    return out


def by_rule(item):
    return rules.rule_applies(item.category, item.source, item.example_id, item.level)


# ---------------------------------------------------------------------------------------------- the official judge


def _versions(chain_of, item):
    got = chain_of.get((item.category, item.example_id), {})
    missing = [lv for lv in range(item.level + 1) if lv not in got]
    if missing:
        raise FollowBenchError(f"{item.where}: example {item.example_id} lacks level(s) {missing}, which the judge "
                               f"prompt shows")
    return [got[lv] for lv in range(item.level + 1)]


def judge_prompt(chain_of, item, response):
    """The official judge prompt of the item's category: the initial instruction, each evolved version up to
    the item's level, the response, and the request for a final list of L 'YES'/'NO'."""
    if item.category not in KIND:
        raise FollowBenchError(f"{item.where}: {item.category} items are scored by rules, not by a judge")
    v, n = _versions(chain_of, item), item.level
    if n == 1:
        head = f"we add one {KIND[item.category]} and obtain the final instruction with 1 additional constraint."
        answer_of = "#Answer of Initial Instruction + 1 constraint#"
        system = ("1) Please identify the 1 added constraint.\n"
                  f"2) Please descriminate if the {answer_of} satisfies the 1 added constraint.\n"
                  "3) In the final line, only output a Python LIST with 1 element ('YES' or 'NO') indicating "
                  "whether the answer satisfies the 1 added constraint.")
    else:
        head = (f"we add one {KIND[item.category]} per time and obtain the final instruction with {n} additional "
                f"constraints.")
        answer_of = f"#Answer of Initial Instruction + {n} constraints#"
        system = (f"1) Please identify all {n} added constraints.\n"
                  f"2) For the {n} added constraints, discriminate if the {answer_of} satisfies each constraint.\n"
                  f"3) In the final line, only output a Python LIST with {n} elements ('YES' or 'NO') indicating "
                  f"whether the answer satisfies each constraint.")
    parts = [f"Given an initial instruction, {head}\n\n", "#Initial Instruction#\n" + v[0] + "\n\n",
             "#Initial Instruction + 1 constraint#\n" + v[1] + "\n\n"]
    parts += [f"#Initial Instruction + {i} constraints#\n" + v[i] + "\n\n" for i in range(2, n + 1)]
    parts += [answer_of + "\n" + response + "\n\n", "#System#\n" + system]
    return "".join(parts)


def _last_line(text):
    return text.strip("`").strip().split("\n")[-1]


def parse_judge_answer(text, level):
    """(hard, soft) from a judge's answer as the official parser reads it, or None when unreadable. Level 1:
    'YES' (else 'NO') anywhere in the last line. Level > 1: the last line's [...] must be a list of `level`
    elements, each 'YES' or one of NO/PARTIAL/MAYBE/UNKNOWN/N/A."""
    line = _last_line(text)
    if level == 1:
        return (1, 1.0) if "YES" in line else (0, 0.0) if "NO" in line else None
    start, end = line.find("["), line.rfind("]")  # the official greedy \[.*\], without a backtracking search
    if start < 0 or end < start:
        return None
    try:
        got = ast.literal_eval(line[start:end + 1])
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(got, (list, tuple)) or len(got) != level:
        return None
    if any(not isinstance(x, str) or (x != "YES" and x not in ZERO_WORDS) for x in got):
        return None
    yes = sum(x == "YES" for x in got)
    return int(yes == level), yes / level


# ---------------------------------------------------------------------------------------------- per-constraint


def added_constraints(chain_of, item):
    """One text per added constraint, for the kit's judge: the change between consecutive versions."""
    v = _versions(chain_of, item)
    return [f"The response satisfies the constraint that was added when this instruction:\n<<<\n{v[k - 1]}\n>>>\n"
            f"was changed into this one:\n<<<\n{v[k]}\n>>>" for k in range(1, item.level + 1)]


# ---------------------------------------------------------------------------------------------- scoring


def rule_verdict(item, response):
    if item.language != "en":
        raise FollowBenchError(f"{item.where}: the Chinese rule checks (FollowBench code_zh) are not implemented")
    ok = int(rules.check(item.category, item.source, item.example_id, item.level, response, item.target))
    return Verdict(item.category, item.example_id, item.level, ok, float(ok), "rule")


def _split(items, responses):
    if len(items) != len(responses):
        raise ValueError(f"{len(items)} items but {len(responses)} responses")
    scored = [(it, r) for it, r in zip(items, responses) if it.level > 0]
    return chains(items), scored


def score_official(items, responses, ask):
    """Verdicts for every level > 0 item: rule items by rule, the others by ask(judge_prompt) -> str.
    `items` includes the level-0 rows (the prompts show them); their responses are ignored (use None)."""
    chain_of, scored = _split(items, responses)
    out = []
    for it, r in scored:
        if by_rule(it):
            out.append(rule_verdict(it, r))
            continue
        answer = ask(judge_prompt(chain_of, it, r))
        got = parse_judge_answer(answer, it.level)
        hard, soft = got or (0, 0.0)
        out.append(Verdict(it.category, it.example_id, it.level, hard, soft, "judge", got is not None, answer))
    return out


def score_per_constraint(items, responses, judge):
    """Verdicts with the judged items asked one added constraint at a time through the kit's judge interface
    (`judge.check`); an unreadable answer is a "no" and marks the verdict unparsed."""
    chain_of, scored = _split(items, responses)
    judged = [(it, r) for it, r in scored if not by_rule(it)]
    v = judge.check([({"prompt": it.instruction}, r, added_constraints(chain_of, it)) for it, r in judged])
    answers = iter(zip(v.ok, v.parsed, v.answers or [None] * len(judged)))
    out = []
    for it, r in scored:
        if by_rule(it):
            out.append(rule_verdict(it, r))
            continue
        ok, parsed, texts = next(answers)
        out.append(Verdict(it.category, it.example_id, it.level, int(all(ok)), sum(ok) / len(ok), "judge",
                           all(parsed), texts))
    return out


# ---------------------------------------------------------------------------------------------- tables


def _mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def tables(verdicts):
    """{"HSR": {category: {level: %}}, "SSR": ..., "CSL": {category: levels}, "unparseable": {category: {level:
    n}}, "n": {category: {level: n}}}; each measure has an "avg" entry, the unweighted mean over categories."""
    cats = [c for c in CATEGORIES if any(v.category == c for v in verdicts)]
    out = {"HSR": {}, "SSR": {}, "CSL": {}, "unparseable": {}, "n": {}}
    for c in cats:
        vs = [v for v in verdicts if v.category == c]
        at = {lv: [v for v in vs if v.level == lv] for lv in LEVELS}
        out["HSR"][c] = {lv: 100 * _mean([v.hard for v in at[lv]]) for lv in LEVELS}
        out["SSR"][c] = {lv: 100 * _mean([v.soft for v in at[lv]]) for lv in LEVELS}
        out["unparseable"][c] = {lv: sum(not v.parsed for v in at[lv]) for lv in LEVELS}
        out["n"][c] = {lv: len(at[lv]) for lv in LEVELS}
        out["CSL"][c] = csl(vs)
    for m in ("HSR", "SSR"):
        out[m]["avg"] = {lv: _mean([out[m][c][lv] for c in cats]) for lv in LEVELS}
    out["CSL"]["avg"] = _mean([out["CSL"][c] for c in cats])
    return out


def csl(verdicts):
    """Mean over instructions with all five levels of the number of levels satisfied (hard) from level 1 up to
    the first failure."""
    hard = {}
    for v in verdicts:
        hard.setdefault(v.example_id, {})[v.level] = v.hard
    runs = []
    for levels in hard.values():
        if set(levels) != set(LEVELS):
            continue  # the official code counts complete groups of five only
        n = 0
        while n < 5 and levels[n + 1] == 1:
            n += 1
        runs.append(n)
    return _mean(runs)


def format_tables(t):
    """Markdown, rounded as the official CSV files are (HSR/SSR: 2 decimals, percent; CSL: 1 decimal)."""
    lines = []
    for m in ("HSR", "SSR"):
        lines += [f"| {m} (%) | " + " | ".join(f"level {lv}" for lv in LEVELS) + " | unparseable |",
                  "|---" * 7 + "|"]
        for c, row in t[m].items():
            bad = sum(t["unparseable"][c].values()) if c in t["unparseable"] else ""
            lines.append(f"| {c} | " + " | ".join(f"{row[lv]:.2f}" for lv in LEVELS) + f" | {bad} |")
        lines.append("")
    lines += ["| CSL | " + " | ".join(t["CSL"]) + " |", "|---" * (len(t["CSL"]) + 1) + "|",
              "| levels | " + " | ".join(f"{x:.1f}" for x in t["CSL"].values()) + " |"]
    return "\n".join(lines)
