"""CFBench (Zhang et al. 2024, PKU-Baichuan-MLSystemLab/CFBench): 1,000 Chinese prompts, each with a list of
criteria (考察点) that a response must meet, judged by an LLM. Four pieces, each usable alone:

    items = read_items("cfbench_data.json")                 # Item: prompt, gold answer, split, criteria
    prompt = official_prompt(item, response)                 # CFBench's batched judge prompt, verbatim
    parsed = parse_official(answer, item)                    # its strict parser, then its fallback (see below)
    m = item_metrics(parsed.scores, parsed.parsing, item)    # CSR / ISR / PSR of one item; `aggregate` for a table

and two ways to judge:
- `score_official(items, responses, ask)`: one call per item with the official prompt, `ask(prompt) -> str` (the
  kit passes a local model's generation), re-asked up to `rounds` times while the strict parser fails, as the
  official `evalaute.py` does, then its fallback parser;
- `score_pointwise(items, responses, judge)`: one yes/no question per criterion through the kit's judge interface
  (minirlvr/judge.py: `judge.check([(record, response, [criterion])])`), the gold answer shown where there is one.

Metrics (official definitions): CSR = mean of an item's 0/1 criterion scores (rounded to 2 decimals, numpy's
rounding); ISR = 1 when that rounded CSR is 1; PSR = 0 when any primary (主需) criterion fails, else 1 when all
criteria are primary, else 1 when 0.5 + 0.5 * mean(secondary) > 0.8 (only secondary: CSR > 0.8). Table figures are
means over items, overall and per split (easy / hard), rounded to 2 decimals.

The official fallback parser (used when the strict one fails after every round) keeps only lines scored 1: a
criterion judged 0 is dropped, so a partial answer scores CSR = 1 (a bug; 4 of the 60 released judgements went this
way). `official` mode reproduces it for comparability and counts how often it fired (`Report.fallback`);
`corrected=True` keeps the 0s (labelled "corrected" in reports). A fallback line whose score is not a number
crashes the official script; here it is skipped, as an unreadable line.

`audit(judge, judgements)` compares a judge with GPT-4o's released criterion verdicts (judge-audit's figures).
This file calls no model itself and writes no files.
"""

import json
import math
from dataclasses import dataclass, field

import numpy as np

from minirlvr.data import DataError

NEEDS = {"主需": "primary", "次需": "secondary"}
SPLITS = ("easy", "hard")

# CFBench's judge prompt (code/evalaute.py, `gpt_judge_for_cfbench`), character for character: the released
# judgements and the paper's numbers were produced with it. {criteria}: the criteria texts joined by blank lines.
OFFICIAL_TEMPLATE = (
    "\n"
    "我想让你扮演一个质量评估器的角色。你需要结合 [用户指令],[参考答案],[模型答案],[考察点]对于模型答案进"
    "行评估,按照0或1打分.\n"
    "具体而言:[参考答案]和[模型答案]都是对[用户指令]的回复,[考察点]中定义了模型答案应该满足、需要被考察的点"
    "。你需要严格按照[考察点]中的每条考察点，对[于模型答案]进行打分。如果完全满足则为1，如果不满足则为0.\n"
    "需要注意: [参考答案]如果为空,则[考察点]的满足不考虑[参考答案].\n"
    "输出格式: 1.严格按照[考察点]中的考察点的顺序,每行输出一条，行与行之间使用\"\n"
    "\n"
    "\"切割;  \n"
    "        2.每行首先输出[考察点]中对应内容，然后用'\t'分割，在后面输出对应[评估打分],0或1。 "
    "\n"
    "        3.请直接输出你的评估,不要输出其他任何内容。\n"
    "\n"
    "可参考下面样例。\n"
    "\n"
    "[样例1]:\n"
    "    [用户指令]: 请对给定的句子\"我爱吃苹果\"做以下编辑步骤\n"
    "\n"
    "1.将句子中的“我”改成“小明”。\n"
    "\n"
    "只输出编辑后的句子。\n"
    "    \n"
    "    [参考答案]: \"小明爱吃苹果\"\n"
    "    \n"
    "    [模型答案]: \"好的，修改后为：小明爱吃苹果\"\n"
    "\n"
    "    [评估标准]:\n"
    "    和参考答案结果一致，替换准确\n"
    "\n"
    "不存在其他冗余信息，引号可忽略\n"
    "    \n"
    "    [你的评估]: \n"
    "    和参考答案结果一致，替换准确\t1\n"
    "\n"
    "不存在其他冗余信息，引号可忽略\t0\n"
    "\n"
    "[样例2]:\n"
    "    [用户指令]: 给我生成一些唐代诗人李白的诗句，主题是友情。输出结果应为JSON格式，包含两个key："
    "\"诗句\"和\"诗名\"。提供三组不同的诗句，每个诗句控制在5个字，一组10个字。\n"
    "\n"
    "    [参考答案]: \"\"\n"
    "    \n"
    "    [模型答案]: '\"诗句\": [\"诗句\": \"明月照友心\", \"诗名\": \"友情如月"
    "\",\"诗句\": \"高山流水情\", \"诗名\": \"知音难觅\",\"诗句\": \"酒逢知己饮\""
    ", \"诗名\": \"醉卧沙场笑\"]'\n"
    "\n"
    "    [评估标准]: \n"
    "    生成唐代诗人李白的诗句。\n"
    "\n"
    "诗句主题是友情。\n"
    "\n"
    "输出结果应为JSON格式，JSON格式包含两个key：\"\"诗句\"\"和\"\"诗名\"\"。\n"
    "\n"
    "提供三组不同的诗句。\n"
    "\n"
    "每个诗句控制在5个字，一组10个字。\n"
    "\n"
    "    [你的评估]: \n"
    "    生成唐代诗人李白的诗句。\t0\n"
    "\n"
    "诗句主题是友情。\t1\n"
    "\n"
    "输出结果应为JSON格式，JSON格式包含两个key：\"\"诗句\"\"和\"\"诗名\"\"。\t0\n"
    "\n"
    "提供三组不同的诗句。\t1\n"
    "\n"
    "每个诗句控制在5个字，一组10个字。\t0\n"
    "\n"
    "[用户指令]: {prompt}\n"
    "\n"
    "[参考答案]: {gold}\n"
    "\n"
    "[模型答案]: {response}\n"
    "\n"
    "[评估标准]: {criteria}\n"
    "\n"
    "[你的评估]: \n"
)

# The pointwise question, in the kit's judge-template form ({prompt}, {response}, {constraint}; llm_judge.py):
# pass it as LLMJudge(template=POINTWISE_TEMPLATE) for a Chinese one; the kit's English default works as well.
POINTWISE_TEMPLATE = (
    "你是一个严格的指令遵循评估器。下面是用户指令、模型答案和一条考察点。\n\n"
    "[用户指令]\n{prompt}\n\n"
    "[模型答案]\n{response}\n\n"
    "[考察点]\n{constraint}\n\n"
    "模型答案是否完全满足这条考察点？只回答一个词：yes 或 no。"
)
GOLD_HEADER = "\n\n[参考答案 / reference answer]\n"


class CFBenchError(DataError):
    """A malformed CFBench file: the message names the file, the item index and the field."""


@dataclass
class Criterion:
    text: str
    need: str  # "primary" (主需) or "secondary" (次需)
    type: str = ""
    subtype: str = ""


@dataclass
class Item:
    idx: object
    prompt: str
    gold: str
    split: str  # "easy" or "hard"
    criteria: list  # [Criterion]


@dataclass
class Parsed:
    """One judge answer read the official way: scores as strings ("1", "0"), parsing "1" (strict), "0"
    (fallback) or "-1" (nothing readable: scores ["0"])."""

    scores: list
    parsing: str


@dataclass
class Report:
    """Per-item metrics and the table of one scoring run."""

    metrics: list  # per item {"CSR", "ISR", "PSR"}
    table: dict  # aggregate(): CSR/ISR/PSR overall and per split
    scores: list  # per item, the 0/1 scores as strings (official) or ints (pointwise)
    answers: list  # per item, the judge's raw text (official: the last answer; pointwise: one per criterion)
    parsing: list = field(default_factory=list)  # official: "1" / "0" / "-1" per item
    fallback: int = 0  # official: items scored by the fallback parser (parsing "0" or "-1")
    calls: int = 0
    unparseable: int = 0  # pointwise: criteria whose answer could not be read (scored 0)
    label: str = ""


# ---------------------------------------------------------------------------------------------- reading


def _item(raw, where):
    """An Item from one decoded object; `where` ("file: item 3") prefixes every error."""
    if not isinstance(raw, dict):
        raise CFBenchError(f"{where}: expected an object, got {type(raw).__name__}")
    for key in ("prompt", "criteria", "split"):
        if key not in raw:
            raise CFBenchError(f"{where}: missing field {key!r}")
    if not isinstance(raw["prompt"], str):
        raise CFBenchError(f"{where}: field 'prompt' must be a string")
    gold = raw.get("gold", "")
    if not isinstance(gold, str):
        raise CFBenchError(f"{where}: field 'gold' must be a string, got {type(gold).__name__}")
    if raw["split"] not in SPLITS:
        raise CFBenchError(f"{where}: field 'split' must be one of {SPLITS}, got {raw['split']!r}")
    crits = raw["criteria"]
    if not isinstance(crits, list) or not crits:
        raise CFBenchError(f"{where}: field 'criteria' must be a non-empty list")
    out = []
    for j, c in enumerate(crits):
        if not (isinstance(c, list) and len(c) >= 2 and isinstance(c[0], str) and c[0]):
            raise CFBenchError(f"{where}: field 'criteria'[{j}] must be [text, 主需|次需, type, subtype]")
        if c[1] not in NEEDS:
            raise CFBenchError(f"{where}: field 'criteria'[{j}][1] must be 主需 or 次需, got {c[1]!r}")
        out.append(Criterion(c[0], NEEDS[c[1]], *(str(x) for x in c[2:4])))
    return Item(raw.get("idx"), raw["prompt"], gold, raw["split"], out)


def _load(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise CFBenchError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, list):
        raise CFBenchError(f"{path}: expected a JSON list of items, got {type(data).__name__}")
    return data


def read_items(path):
    """CFBench's data file (cfbench_data.json, a JSON list) as Items."""
    return [_item(raw, f"{path}: item {i} (idx {raw.get('idx') if isinstance(raw, dict) else '?'})")
            for i, raw in enumerate(_load(path))]


def read_judgements(path):
    """A released judgement file (output/judge/<model>_eval.json): (Item, record) pairs, the record holding the
    fields `response`, `judge_response`, `judge_score`, `judge_parsing`, `judge_metric`."""
    out = []
    for i, raw in enumerate(_load(path)):
        where = f"{path}: item {i}"
        item = _item(raw, where)
        for key, kind in (("response", str), ("judge_response", str), ("judge_score", list),
                          ("judge_parsing", str), ("judge_metric", dict)):
            if not isinstance(raw.get(key), kind):
                raise CFBenchError(f"{where}: field {key!r} missing or not a {kind.__name__}")
        out.append((item, raw))
    return out


# ---------------------------------------------------------------------------------------------- prompts


def official_prompt(item, response):
    """The official batched judge prompt for one item; placeholders filled in one pass, so braces in a response
    are kept as written."""
    values = {"prompt": item.prompt, "gold": item.gold, "response": response,
              "criteria": "\n\n".join(c.text for c in item.criteria)}
    out, rest = [], OFFICIAL_TEMPLATE
    for key in ("prompt", "gold", "response", "criteria"):  # the template's order
        head, rest = rest.split("{" + key + "}", 1)
        out += [head, values[key]]
    return "".join(out) + rest


def pointwise_record(item):
    """The record the kit's judge sees: the prompt, followed by the gold answer where the item has one."""
    return {"prompt": item.prompt + (GOLD_HEADER + item.gold if item.gold.strip() else "")}


# ---------------------------------------------------------------------------------------------- parsing


def _score(text):
    """float(text) as the official parser reads it, None when it is not a number."""
    try:
        return float(text)
    except ValueError:
        return None


def parse_strict(answer, item):
    """The official strict parser: the answer split on blank lines must give one "<criterion>\\t<0|1>" per
    criterion, in order, each criterion text exactly as written in the data. The scores, or None."""
    parts = answer.split("\n\n")
    if len(parts) != len(item.criteria):
        return None
    scores = []
    for part, crit in zip(parts, item.criteria):
        cols = part.split("\t")
        if len(cols) != 2 or cols[0] != crit.text or _score(cols[1]) not in (0, 1):
            return None
        scores.append(cols[1].strip())
    return scores


def parse_fallback(answer, corrected=False):
    """The official fallback parser: every line "<anything>\\t<score>" whose score is 1, in order (the official
    code also drops the 0s: `corrected=True` keeps them). Lines with a non-numeric score are skipped."""
    scores = []
    for line in answer.split("\n"):
        cols = line.split("\t")
        if len(cols) != 2:
            continue
        s = _score(cols[1])
        if s == 1 or (corrected and s == 0):
            scores.append(cols[1].strip())
    return scores


def parse_official(answer, item, corrected=False, strict=True):
    """Parsed scores of one judge answer: strict first, else the fallback, else ["0"] with parsing "-1".
    strict=False goes straight to the fallback (the official script does so after its last round)."""
    scores = parse_strict(answer, item) if strict else None
    if scores is not None:
        return Parsed(scores, "1")
    scores = parse_fallback(answer, corrected)
    return Parsed(scores, "0") if scores else Parsed(["0"], "-1")


# ---------------------------------------------------------------------------------------------- metrics


def _round2(x):
    return float(np.round(x, 2))  # the official rounding (numpy: half to even on x * 100)


def item_metrics(scores, parsing, item):
    """CSR / ISR / PSR of one item from its scores ("1"/"0" strings or numbers) and parsing flag."""
    vals = [float(s) for s in scores]
    csr = _round2(np.mean(vals))
    isr = 0 if csr < 1 else 1
    if parsing == "-1":
        psr = 0
    elif parsing == "0":  # fallback: the scores no longer line up with the criteria
        psr = 1 if csr > 0.8 else 0
    elif parsing == "1":
        if len(vals) != len(item.criteria):
            raise ValueError(f"item {item.idx}: {len(vals)} scores for {len(item.criteria)} criteria")
        primary = [v for v, c in zip(vals, item.criteria) if c.need == "primary"]
        secondary = [v for v, c in zip(vals, item.criteria) if c.need == "secondary"]
        if 0 in primary:
            psr = 0
        elif not primary:
            psr = 1 if csr > 0.8 else 0
        elif not secondary:
            psr = 1
        else:
            psr = 1 if 0.5 + 0.5 * _round2(np.mean(secondary)) > 0.8 else 0
    else:
        raise ValueError(f"item {item.idx}: parsing flag must be '1', '0' or '-1', got {parsing!r}")
    return {"CSR": csr, "ISR": isr, "PSR": psr}


def aggregate(items, metrics):
    """The official table: CSR / ISR / PSR means over all items and per split, rounded to 2 decimals (a split
    with no item is NaN)."""
    table = {}
    for name, keep in (("", None), ("_easy", "easy"), ("_hard", "hard")):
        rows = [m for it, m in zip(items, metrics) if keep is None or it.split == keep]
        for k in ("CSR", "ISR", "PSR"):
            table[k + name] = _round2(np.mean([m[k] for m in rows])) if rows else math.nan
    return table


# ---------------------------------------------------------------------------------------------- scoring


def score_official(items, responses, ask, rounds=10, corrected=False):
    """The official procedure: ask(official_prompt) per item; items whose answer the strict parser rejects are
    asked again, up to `rounds` rounds in all; what is still rejected is read by the fallback parser (buggy as
    released, or corrected). With a greedy judge every round gives the same answer: pass rounds=1."""
    if len(items) != len(responses):
        raise ValueError(f"{len(items)} items but {len(responses)} responses")
    answers, parsed, calls = [None] * len(items), [None] * len(items), 0
    todo = list(range(len(items)))
    for _ in range(max(1, rounds)):
        left = []
        for i in todo:
            answers[i] = ask(official_prompt(items[i], responses[i]))
            calls += 1
            scores = parse_strict(answers[i], items[i])
            if scores is None:
                left.append(i)
            else:
                parsed[i] = Parsed(scores, "1")
        todo = left
        if not todo:
            break
    for i in todo:
        parsed[i] = parse_official(answers[i], items[i], corrected, strict=False)
    metrics = [item_metrics(p.scores, p.parsing, it) for p, it in zip(parsed, items)]
    return Report(metrics, aggregate(items, metrics), [p.scores for p in parsed], answers,
                  parsing=[p.parsing for p in parsed], fallback=len(todo), calls=calls,
                  label="official, fallback corrected" if corrected else "official")


def score_pointwise(items, responses, judge):
    """One question per criterion through the kit's judge interface; an unreadable answer scores 0."""
    if len(items) != len(responses):
        raise ValueError(f"{len(items)} items but {len(responses)} responses")
    v = judge.check([(pointwise_record(it), r, [c.text for c in it.criteria]) for it, r in zip(items, responses)])
    scores = [[int(ok) for ok in row] for row in v.ok]
    metrics = [item_metrics(s, "1", it) for s, it in zip(scores, items)]
    return Report(metrics, aggregate(items, metrics), scores, v.answers, parsing=["1"] * len(items),
                  calls=v.calls, unparseable=v.unparseable, label="pointwise")


# ---------------------------------------------------------------------------------------------- agreement


def released_verdicts(judgements):
    """(Item, response, [GPT-4o's 0/1 per criterion]) for each released judgement that the strict parser read:
    the criterion verdicts a judge can be compared with (fallback-parsed ones no longer line up with criteria)."""
    out = []
    for item, rec in judgements:
        scores = parse_strict(rec["judge_response"], item)
        if scores is not None:
            out.append((item, rec["response"], [int(float(s)) for s in scores]))
    return out


def _figures(refs, judged_rows, parsed_rows, answers):
    """judge-audit's metrics over every criterion of `refs`, and one row per question."""
    from minirlvr.evaluation.judge_audit import metrics

    judged, truth, parsed, rows = [], [], [], []
    for (it, _, gpt), ok, p, ans in zip(refs, judged_rows, parsed_rows, answers):
        for j, crit in enumerate(it.criteria):
            judged.append(bool(ok[j]))
            truth.append(gpt[j] == 1)
            parsed.append(bool(p[j]))
            rows.append({"idx": it.idx, "criterion": crit.text, "gpt4o": gpt[j], "judged": int(ok[j]),
                         "parsed": bool(p[j]), "answer": ans[j] if isinstance(ans, list) else ans})
    figures = metrics(judged, truth, parsed)
    figures["agreement"] = figures["accuracy"]
    return figures, rows


def audit(judge, judgements):
    """judge-audit's figures for `judge` (kit interface, asked pointwise per criterion) against GPT-4o's released
    verdicts: n, violated, agreement (= accuracy), recall / precision on violations, unparseable, ...
    (minirlvr.evaluation.judge_audit.metrics), plus the per-question rows."""
    refs = released_verdicts(judgements)
    v = judge.check([(pointwise_record(it), resp, [c.text for c in it.criteria]) for it, resp, _ in refs])
    answers = v.answers or [[""] * len(it.criteria) for it, _, _ in refs]
    return _figures(refs, v.ok, v.parsed, answers)


def audit_official(ask, judgements):
    """The same figures with the official batched prompt, one ask(prompt) -> str per item; an answer the strict
    parser rejects leaves all of that item's criteria unparsed (scored "not satisfied")."""
    refs = released_verdicts(judgements)
    ok, parsed, answers = [], [], []
    for it, resp, _ in refs:
        answer = ask(official_prompt(it, resp))
        scores = parse_strict(answer, it)
        n = len(it.criteria)
        ok.append([False] * n if scores is None else [float(s) == 1 for s in scores])
        parsed.append([scores is not None] * n)
        answers.append(answer)
    return _figures(refs, ok, parsed, answers)
