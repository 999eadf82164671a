"""Record the official Multi-IF scorer's verdicts for tests/test_multiif.py, into tests/data/multiif_oracle.json.

The official scorer (facebookresearch/Multi-IF `ifeval.py`, `metrics.py`) is on PyPI only inside evalscope
(`evalscope/benchmarks/multi_if/`, the same code with langdetect seeded at import), whose own dependencies are too
heavy for the test extra. So the verdicts are recorded once, in a separate environment:

    python3 -m venv /tmp/evs-venv
    /tmp/evs-venv/bin/pip install --no-deps evalscope==1.14.1
    /tmp/evs-venv/bin/pip install emoji langdetect "nltk>=3.9" pythainlp==5.4.0 python-crfsuite
    NLTK_DATA=../shared/data/nltk_data /tmp/evs-venv/bin/python tests/make_multiif_oracle.py [--shared ../shared/data]

Only the two official files are loaded (evalscope's package __init__ imports its whole framework): a stub provides
the logger they import. One change to them: their English sentence counter loads NLTK's old Punkt pickle, which
NLTK >= 3.9 refuses to load; it gets the same English Punkt model from punkt_tab instead.

Recorded: (1) for every text of tests/multiif_cases.py, the language langdetect finds, the official word and
sentence counts (found by bisection on the official checks, so through its own language dispatch) and the strict
and loose verdicts of the official gen_acc_strict / gen_acc_loose on every case; (2) for every row of the English
Multi-IF file whose turn-1 prompt is an IFEval prompt, the official verdicts of GPT-4's released IFEval response to
it on the instruction lists of turns 1, 2 and 3 (turns 2 and 3 are extra coverage of the checks, not a Multi-IF
result), with random seeded 0 first (the official code draws a letter for `letter="#"`).
"""

import argparse
import csv
import importlib.util
import json
import logging
import os
import random
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import multiif_cases  # noqa: E402

CSV_NAME = os.path.join("multiif", "multiIF_20241018_english.csv")
GPT4_NAME = os.path.join("ifeval", "input_response_data_gpt4_20231107_145030.jsonl")


def load_official():
    """evalscope's copy of Multi-IF's ifeval.py and metrics.py, without evalscope's package __init__."""
    spec = importlib.util.find_spec("evalscope")
    root = os.path.join(os.path.dirname(spec.origin), "benchmarks", "multi_if")
    package = types.ModuleType("evalscope")
    package.__path__ = []
    utils = types.ModuleType("evalscope.utils")
    utils.get_logger = lambda: logging.getLogger("multi_if")
    folder = types.ModuleType("official_multi_if")
    folder.__path__ = [root]
    sys.modules.update({"evalscope": package, "evalscope.utils": utils, "official_multi_if": folder})
    modules = {}
    for name in ("ifeval", "metrics"):
        spec = importlib.util.spec_from_file_location(f"official_multi_if.{name}", os.path.join(root, f"{name}.py"))
        modules[name] = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = modules[name]
        spec.loader.exec_module(modules[name])
    from nltk.tokenize import PunktTokenizer

    punkt = PunktTokenizer("english")
    modules["ifeval"]._get_sentence_tokenizer = lambda: punkt
    return modules["ifeval"], modules["metrics"]


def bits(flags):
    return "".join("1" if f else "0" for f in flags)


def official_count(ifeval, cls, field, text):
    """The smallest n with "less than n+1" true, i.e. the official count, found by bisection."""
    def less_than(n):
        inst = cls("x")
        inst.build_description(**{field: n, "relation": "less than"})
        return inst.check_following(text)
    lo, hi = 0, 1 << 24  # less_than(hi) holds, less_than(lo) never does
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if less_than(mid) else (mid, hi)
    return lo


def record_texts(ifeval, metrics):
    import langdetect

    out = {}
    for name, lang, text in multiif_cases.texts():
        cases = multiif_cases.instructions(lang)
        x = {"response": text, "instruction_id_list": [i for i, _ in cases], "kwargs": [kw for _, kw in cases]}
        try:
            found = langdetect.detect(text)
        except langdetect.LangDetectException:
            found = None
        out[name] = {"language": found,
                     "words": official_count(ifeval, ifeval.NumberOfWords, "num_words", text),
                     "sentences": official_count(ifeval, ifeval.NumberOfSentences, "num_sentences", text),
                     "strict": bits(metrics.gen_acc_strict(x)["follow_instruction_list"]),
                     "loose": bits(metrics.gen_acc_loose(x)["follow_instruction_list"])}
    return out


def record_gpt4(metrics, shared):
    responses = {}
    with open(os.path.join(shared, GPT4_NAME), encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            responses[row["prompt"]] = row["response"]
    random.seed(0)
    out = {}
    with open(os.path.join(shared, CSV_NAME), newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            response = responses.get(json.loads(row["turn_1_prompt"])["content"])
            if response is None:
                continue
            verdicts = {}
            for t in (1, 2, 3):
                if not row[f"turn_{t}_instruction_id_list"]:
                    continue
                x = {"response": response, "instruction_id_list": json.loads(row[f"turn_{t}_instruction_id_list"]),
                     "kwargs": [json.loads(k) for k in json.loads(row[f"turn_{t}_kwargs"])]}
                verdicts[str(t)] = [bits(metrics.gen_acc_strict(x)["follow_instruction_list"]),
                                    bits(metrics.gen_acc_loose(x)["follow_instruction_list"])]
            out[row["key"]] = verdicts
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", default=os.path.join(HERE, "..", "..", "shared", "data"))
    p.add_argument("--out", default=os.path.join(HERE, "data", "multiif_oracle.json"))
    args = p.parse_args()
    logging.disable(logging.CRITICAL)
    ifeval, metrics = load_official()
    from importlib.metadata import version  # of the installed distributions (evalscope's module is the stub)

    result = {"how": "tests/make_multiif_oracle.py",
              "versions": {p: version(p) for p in ("evalscope", "langdetect", "nltk", "pythainlp", "emoji")},
              "fingerprint": multiif_cases.fingerprint(),
              "texts": record_texts(ifeval, metrics),
              "gpt4": record_gpt4(metrics, args.shared)}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=0, sort_keys=True)
        f.write("\n")
    print(f"wrote {args.out}: {len(result['texts'])} texts, {len(result['gpt4'])} GPT-4 rows")


if __name__ == "__main__":
    main()
