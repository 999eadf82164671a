"""Readers for the public instruction-following RL datasets, mapped onto the kit's record format: a constraint
that one of the kit's verifiers checks becomes a hard constraint (its id and validated kwargs); any other
becomes a soft constraint, judged later, with the best wording the file offers.

Format notes (what these readers rely on; checked against the releases' code and dataset cards):

IFEval format (google/IFEval `input_data.jsonl`, IFBench's test file): one object per line with "prompt",
"instruction_id_list" and "kwargs" (one dict per id; releases pad each dict with the other instructions'
kwargs set to null, which validation drops), "key" optional.

open-instruct RLVR (allenai/RLVR-IFeval, Tulu 3; open_instruct/ground_truth_utils.py):
  {"messages": [{"role": "user", "content": ...}], "ground_truth": "<JSON>", "dataset": "ifeval",
   "constraint_type": ..., "constraint": "<the constraint in plain English>"}
  ground_truth is a JSON object {"func_name": <one of the 25 functions of open_instruct/if_functions.py>,
  <that function's arguments: N, quantifier, keyword_list, word, forbidden_words, letter, language, i,
  first_word, postscript_marker, options, section_splitter, original_prompt, end_phrase>} with unused ones null.
  RLVR_FUNCS below maps each function to a kit id, or to None where no kit verifier asks the same thing
  (exact counts, "around" counts of sentences or capital words, "* * *" paragraph dividers); those become
  soft constraints worded by the row's "constraint". Later multi-constraint files (allenai/
  IF_multi_constraints_upto5 and the IFBench training data) hold in ground_truth a JSON or Python-literal list
  of {"instruction_id": [...], "kwargs": [...]} with IFEval-style ids. Rows whose "dataset" is not an
  instruction-following one (mixed files also carry GSM8K / MATH rows) are skipped and counted.

VerInstruct (THU-KEG/VerInstruct, VerIF arXiv:2506.09942; VerIF's constraint_analyzer.py):
  {"id": ..., "prompt": "<text>", "checkers": ["[rule] Number_Paragraphs", "[llm] Desired_Writing_Style", ...],
   "functions": ["<Python source defining check_following(instruction, response) -> bool>", ...]}
  functions run parallel to checkers (VerIF zips them); a file with one function per [rule] checker only is
  read the same way. The verl-converted release keeps {"checkers", "functions"} as a JSON string in
  reward_model.ground_truth and the prompt as a list of messages: both layouts are read. An [llm] function
  only calls llm_score / llm_judge (from VerIF's llm_call module) with the constraint's wording: it becomes a
  soft constraint with that wording (found by parsing the source, never running it), else with the checker's
  name. A [rule] function is kept verbatim in the record's "rule_checks" [{"name", "code"}]: it runs only in
  the sandbox (sandbox.py, --run-dataset-code). A [rule] function that itself calls the llm_call module needs
  an LLM, so it is kept as a soft constraint instead. An untagged checker counts as [llm] when its source
  mentions llm_call / llm_score / llm_judge / llm_extract, else as [rule].

RLVR and VerInstruct records get key = the line number (VerInstruct's "id" is kept as "dataset_id").
Errors name the file, the line and the field. This file runs no dataset code and scores nothing.
"""

import ast
import json
import os
import re
from collections import Counter

from minirlvr import verifiers
from minirlvr.data import DataError, iter_jsonl, validate_record
from minirlvr.verifiers.ifeval import ANSWER_OPTIONS

ID_FORM = re.compile(r"^[\w.-]+:[\w.-]+$")
IF_DATASETS = re.compile(r"^(ifeval|if|ifbench|instruction)", re.IGNORECASE)
LLM_CALL = re.compile(r"\bllm_(?:call|score|judge|extract)\b")


def _soft_wording(iid, kwargs):
    """A judge-readable wording for a constraint no kit verifier checks."""
    name = iid.split(":", 1)[1].replace("_", " ")
    args = "; ".join(f"{k}: {v}" for k, v in kwargs.items() if v is not None)
    return f"Follow the prompt's '{name}' instruction exactly" + (f" ({args})." if args else ".")


def _map_id(iid, kwargs, where, field, unknown, stats, soft_text=None):
    """(id, kwargs) if a kit verifier checks iid, else the soft constraint text; or a DataError."""
    if not isinstance(iid, str) or not ID_FORM.match(iid):
        raise DataError(f"{where}: field '{field}' is not an instruction id of the form group:name: {iid!r}")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise DataError(f"{where}: field '{field}' kwargs must be an object, got {type(kwargs).__name__}")
    if iid not in verifiers.ids():
        if unknown == "error":
            raise DataError(f"{where}: field '{field}' names unknown instruction id {iid!r} "
                            "(--unknown soft keeps such constraints as soft ones)")
        stats["soft"][iid] += 1
        return soft_text or _soft_wording(iid, kwargs)
    try:
        kw = verifiers.validate_kwargs(iid, kwargs)
    except verifiers.VerifierError as e:
        raise DataError(f"{where}: field '{field}': {e}") from None
    stats["mapped"][iid] += 1
    return iid, kw


def _record(base, hard, soft, source):
    rec = dict(base)
    rec["instruction_id_list"] = [i for i, _ in hard]
    rec["kwargs"] = [kw for _, kw in hard]
    rec["soft_constraints"] = list(dict.fromkeys(soft))
    rec.setdefault("source", source)
    return rec


def _read(path, row_fn, unknown="soft"):
    """(records, stats): row_fn(row, "file:line", line, stats, unknown, path) -> a record, or None to skip the row."""
    stats = {"rows": 0, "records": 0, "mapped": Counter(), "soft": Counter(), "skipped": Counter()}
    records = []
    for lineno, row in iter_jsonl(path):
        stats["rows"] += 1
        rec = row_fn(row, f"{path}:{lineno}", lineno, stats, unknown, path)
        if rec is not None:
            records.append(rec)
    stats["records"] = len(records)
    return records, stats


def _split(results, hard, soft):
    for x in results:
        (soft.append(x) if isinstance(x, str) else hard.append(x))


# ---------------------------------------------------------------------------------------------- IFEval
def _ifeval_row(row, where, lineno, stats, unknown, path):
    if "instruction_id_list" not in row:
        raise DataError(f"{where}: field 'instruction_id_list' is missing")
    validate_record(row, where)
    ids, kwargs = row["instruction_id_list"], row.get("kwargs") or [{} for _ in row["instruction_id_list"]]
    hard, soft = [], list(row.get("soft_constraints", []))
    _split([_map_id(i, kw, where, f"instruction_id_list[{j}]", unknown, stats)
            for j, (i, kw) in enumerate(zip(ids, kwargs))], hard, soft)
    base = {k: v for k, v in row.items() if k not in ("instruction_id_list", "kwargs", "soft_constraints")}
    base.setdefault("key", lineno)
    return _record(base, hard, soft, f"ifeval:{os.path.basename(path)}")


def read_ifeval(path, unknown="soft"):
    """(records, stats) from an IFEval-format file."""
    return _read(path, _ifeval_row, unknown)


# ---------------------------------------------------------------------------------------------- RLVR
def _at_most(n):
    return n + 1  # "at most N" is "less than N + 1" in the kit's relations


def _around(n):
    tol = max(round(n * 0.1), 1)  # open-instruct's tolerance for "around N words"
    return max(0, n - tol), n + tol


def _words(a):
    n, q = a("N", int), a("quantifier", str)
    if q == "at least":
        return "length_constraints:number_words", {"num_words": n, "relation": "at least"}
    if q == "at most":
        return "length_constraints:number_words", {"num_words": _at_most(n), "relation": "less than"}
    if q == "around":
        lo, hi = _around(n)
        return "length_constraints:word_count_range", {"min_words": lo, "max_words": hi}
    return None


def _counted(iid, count_key, relation_key):
    def convert(a):
        n, q = a("N", int), a("quantifier", str)
        if q == "at least":
            return iid, {count_key: n, relation_key: "at least"}
        if q == "at most":
            return iid, {count_key: _at_most(n), relation_key: "less than"}
        return None  # "around": no kit verifier has a range for it
    return convert


def _choice(a):
    options = a("options", (str, list))
    if isinstance(options, str):
        try:
            options = ast.literal_eval(options)
        except (ValueError, SyntaxError):
            return None
    ok = isinstance(options, (list, tuple)) and set(options) == set(ANSWER_OPTIONS)
    return ("detectable_format:constrained_response", {}) if ok else None


def _fixed(iid):
    return lambda a: (iid, {})


# func_name -> (getter -> (kit id, kwargs) or None). None (in the table or returned) keeps the constraint soft.
RLVR_FUNCS = {
    "verify_keywords": lambda a: ("keywords:existence", {"keywords": a("keyword_list", list)}),
    "verify_keyword_frequency": None,  # exactly N times: the kit's relations are "less than" / "at least"
    "validate_forbidden_words": lambda a: ("keywords:forbidden_words", {"forbidden_words": a("forbidden_words", list)}),
    "verify_letter_frequency": None,  # exactly N times, case-sensitive
    "validate_response_language": lambda a: ("language:response_language", {"language": a("language", str)}),
    "verify_paragraph_count": None,  # paragraphs divided by "* * *"; the kit's verifier divides by "***"
    "validate_word_constraint": _words,
    "verify_sentence_constraint": _counted("length_constraints:number_sentences", "num_sentences", "relation"),
    "validate_paragraphs": lambda a: ("length_constraints:nth_paragraph_first_word",
                                      {"num_paragraphs": a("N", int), "nth_paragraph": a("i", int),
                                       "first_word": a("first_word", str)}),
    "verify_postscript": lambda a: ("detectable_content:postscript", {"postscript_marker": a("postscript_marker", str)}),
    "validate_placeholders": lambda a: ("detectable_content:number_placeholders", {"num_placeholders": a("N", int)}),
    "verify_bullet_points": lambda a: ("detectable_format:number_bullet_lists", {"num_bullets": a("N", int)}),
    "validate_title": _fixed("detectable_format:title"),
    "validate_choice": _choice,
    "validate_highlighted_sections": lambda a: ("detectable_format:number_highlighted_sections",
                                                {"num_highlights": a("N", int)}),
    "validate_sections": lambda a: ("detectable_format:multiple_sections",
                                    {"section_spliter": a("section_splitter", str), "num_sections": a("N", int)}),
    "validate_json_format": _fixed("detectable_format:json_format"),
    "validate_repeat_prompt": lambda a: ("combination:repeat_prompt", {"prompt_to_repeat": a("original_prompt", str)}),
    "validate_two_responses": _fixed("combination:two_responses"),
    "validate_uppercase": _fixed("change_case:english_capital"),
    "validate_lowercase": _fixed("change_case:english_lowercase"),
    "validate_frequency_capital_words": _counted("change_case:capital_word_frequency", "capital_frequency",
                                                 "capital_relation"),
    "validate_end": lambda a: ("startend:end_checker", {"end_phrase": a("end_phrase", str)}),
    "validate_quotation": _fixed("startend:quotation"),
    "validate_no_commas": _fixed("punctuation:no_comma"),
}


def _parse_ground_truth(value, where):
    if isinstance(value, (dict, list)):
        return value
    if not isinstance(value, str):
        raise DataError(f"{where}: field 'ground_truth' must be a JSON string, object or list")
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(value)  # open-instruct's later files hold Python literals (single quotes)
    except (ValueError, SyntaxError):
        raise DataError(f"{where}: field 'ground_truth' is neither JSON nor a Python literal") from None


def _rlvr_function(gt, row, where, unknown, stats):
    name = gt["func_name"]
    if name not in RLVR_FUNCS:
        raise DataError(f"{where}: field 'ground_truth.func_name' names unknown function {name!r} "
                        f"(open-instruct's are: {', '.join(sorted(RLVR_FUNCS))})")

    def arg(key, types):
        v = gt.get(key)
        if v is None:
            raise DataError(f"{where}: field 'ground_truth.{key}' is missing (needed by {name})")
        if types is int and isinstance(v, float) and v.is_integer():
            v = int(v)  # 3.0 from a JSON writer that made every number a float
        if isinstance(v, bool) or not isinstance(v, types):
            want = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
            raise DataError(f"{where}: field 'ground_truth.{key}' must be {want}, got {type(v).__name__} {v!r}")
        return v

    convert = RLVR_FUNCS[name]
    mapped = convert(arg) if convert else None
    wording = row.get("constraint") if isinstance(row.get("constraint"), str) and row["constraint"].strip() else None
    if mapped is None:
        stats["soft"][name] += 1
        args = {k: v for k, v in gt.items() if k != "func_name" and v is not None}
        return [wording or _soft_wording(f"rlvr:{name}", args)]
    return [_map_id(mapped[0], mapped[1], where, f"ground_truth ({name})", unknown, stats)]


def _rlvr_row(row, where, lineno, stats, unknown, path):
    dataset = row.get("dataset")
    if isinstance(dataset, list):  # some mixtures list one dataset name per ground truth
        dataset = dataset[0] if dataset else None
    if isinstance(dataset, str) and not IF_DATASETS.match(dataset):
        stats["skipped"][dataset] += 1
        return None
    if "ground_truth" not in row:
        raise DataError(f"{where}: field 'ground_truth' is missing")
    base = {k: row[k] for k in ("messages", "prompt") if k in row}
    validate_record(base, where)
    gt = _parse_ground_truth(row["ground_truth"], where)
    hard, soft = [], []
    for n, item in enumerate(gt if isinstance(gt, list) else [gt]):
        if isinstance(item, str):
            item = _parse_ground_truth(item, where)
        if not isinstance(item, dict):
            raise DataError(f"{where}: field 'ground_truth[{n}]' must be an object")
        if "func_name" in item:
            _split(_rlvr_function(item, row, where, unknown, stats), hard, soft)
        elif "instruction_id" in item:
            ids, kwargs = item["instruction_id"], item.get("kwargs") or []
            ids = [ids] if isinstance(ids, str) else ids
            kwargs = [kwargs] if isinstance(kwargs, dict) else kwargs
            if not isinstance(ids, list) or not isinstance(kwargs, list) or len(kwargs) not in (0, len(ids)):
                raise DataError(f"{where}: field 'ground_truth.kwargs' must hold one object per instruction_id")
            kwargs = kwargs or [{} for _ in ids]
            _split([_map_id(i, kw, where, f"ground_truth.instruction_id[{j}]", unknown, stats)
                    for j, (i, kw) in enumerate(zip(ids, kwargs))], hard, soft)
        else:
            raise DataError(f"{where}: field 'ground_truth' has neither 'func_name' nor 'instruction_id'")
    base["key"] = lineno
    return _record(base, hard, soft, f"rlvr:{dataset or os.path.basename(path)}")


def read_rlvr(path, unknown="soft"):
    """(records, stats) from an open-instruct RLVR instruction-following file."""
    return _read(path, _rlvr_row, unknown)


# ---------------------------------------------------------------------------------------------- VerInstruct
def _checker_spec(row, where):
    """(checkers, functions) from the top level or a (reward_model.)ground_truth JSON."""
    if "checkers" in row or "functions" in row:
        spec = row
    else:
        gt = row.get("ground_truth", (row.get("reward_model") or {}).get("ground_truth"))
        if gt is None:
            raise DataError(f"{where}: field 'checkers' is missing (nor is there a ground_truth holding it)")
        spec = _parse_ground_truth(gt, where)
        if not isinstance(spec, dict):
            raise DataError(f"{where}: field 'ground_truth' must be an object with 'checkers' and 'functions'")
    checkers, functions = spec.get("checkers", spec.get("checker")), spec.get("functions")
    if not isinstance(checkers, list) or not all(isinstance(c, str) for c in checkers):
        raise DataError(f"{where}: field 'checkers' must be a list of strings")
    if not isinstance(functions, list) or not all(isinstance(f, str) for f in functions):
        raise DataError(f"{where}: field 'functions' must be a list of strings (Python source)")
    return checkers, functions


def _tag(checker, function):
    m = re.match(r"\s*\[(rule|llm)\]\s*(.*)$", checker, re.IGNORECASE | re.DOTALL)
    if m:
        return m.group(1).lower(), m.group(2).strip()
    return ("llm" if function and LLM_CALL.search(function) else "rule"), checker.strip()


def _llm_wording(source):
    """The constraint text an [llm] function passes to llm_score / llm_judge, found without running it."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
                "llm_score", "llm_judge"):
            texts = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if texts and texts[-1].strip():
                return texts[-1].strip()
    return None


def _check_rule_source(code, where, field):
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        raise DataError(f"{where}: field '{field}' is not valid Python (line {e.lineno}: {e.msg})") from None
    if not any(isinstance(n, ast.FunctionDef) and n.name == "check_following" for n in tree.body):
        raise DataError(f"{where}: field '{field}' defines no top-level check_following(instruction, response)")


def _verinstruct_row(row, where, lineno, stats, unknown, path):
    prompt = row.get("prompt", row.get("messages"))
    base = {"prompt": prompt} if isinstance(prompt, str) else {"messages": prompt}
    if prompt is None:
        raise DataError(f"{where}: field 'prompt' is missing")
    validate_record(base, where)
    checkers, functions = _checker_spec(row, where)
    kinds = [_tag(c, None)[0] for c in checkers]
    if len(functions) == len(checkers):
        pairs = list(zip(checkers, functions))
    elif len(functions) == kinds.count("rule"):
        it = iter(functions)
        pairs = [(c, next(it) if k == "rule" else None) for c, k in zip(checkers, kinds)]
    else:
        raise DataError(f"{where}: field 'functions' has {len(functions)} entries for {len(checkers)} checkers "
                        f"({kinds.count('rule')} tagged [rule]): expected one per checker or one per [rule]")
    soft, rules = [], []
    for j, (checker, function) in enumerate(pairs):
        kind, name = _tag(checker, function)
        if kind == "rule" and function is None:
            raise DataError(f"{where}: field 'checkers[{j}]' is a rule checker without a function")
        if kind == "rule" and not LLM_CALL.search(function):
            _check_rule_source(function, where, f"functions[{j}]")
            rules.append({"name": name, "code": function})
            stats["mapped"]["rule"] += 1
        else:
            wording = _llm_wording(function) if function else None
            soft.append(wording or name.replace("_", " ").strip().capitalize())
            stats["soft"]["rule needing an LLM" if kind == "rule" else "llm"] += 1
    base["key"] = lineno
    if "id" in row:
        base["dataset_id"] = row["id"]
    rec = _record(base, [], soft, "verinstruct")
    rec["rule_checks"] = rules
    return rec


def read_verinstruct(path):
    """(records, stats) from a VerInstruct file; rule checks are kept as source, never run here."""
    return _read(path, _verinstruct_row)


READERS = {"ifeval": read_ifeval, "rlvr": read_rlvr, "verinstruct": read_verinstruct}


def read_dataset(path, fmt, unknown="soft"):
    """(records, stats) of a dataset file in one of READERS' formats."""
    if fmt not in READERS:
        raise DataError(f"unknown dataset format {fmt!r} (one of {', '.join(READERS)})")
    if fmt == "verinstruct":
        return read_verinstruct(path)
    return READERS[fmt](path, unknown=unknown)
