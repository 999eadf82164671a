"""`python -m minirlvr.bench multiif [--official PATH] [--repeat 3] [--size 1000000]`: Multi-IF instruction checks per
second on one core, minirlvr against the official scorer on the same instances in the same run, and the slowest
check of each instruction on hostile responses of about a megabyte.

Speed: the English Multi-IF rows whose turn-1 prompt is IFEval's, each with GPT-4's released IFEval response,
scored against the instruction lists of turns 1, 2 and 3 (6,785 instances). One "check" = one instance strict and
loose, as the official metrics.py does it (build the instruction from its kwargs, check the response, then the 8
loose variants until one passes). Both sides get a warm-up pass, then the best of `--repeat` interleaved passes in
CPU seconds of this process pinned to one core; minirlvr's caches are cleared before every pass.

The official scorer is Multi-IF's ifeval.py (facebookresearch/Multi-IF, or the same file in evalscope's
benchmarks/multi_if/): `--official PATH` names the file; without it, an installed evalscope's copy is used if
there is one (found without importing evalscope). It needs nltk, langdetect, emoji and pythainlp (the test extra),
and NLTK's punkt_tab (in ../shared/data/nltk_data), which replaces the Punkt pickle that NLTK >= 3.9 refuses.

Hostile responses: each of IFEval's 25 instructions (kwargs drawn by the kit with seed 0) on each response of
hostile(), one check each (strict and loose), timed in CPU seconds after a warm-up; the table shows the slowest
per instruction.
"""

import argparse
import contextlib
import csv
import importlib.util
import json
import logging
import os
import random
import sys
import time
import types

from minirlvr.bench.measure import SHARED_DATA

SHARED = SHARED_DATA
DATA = os.path.join("multiif", "multiIF_20241018_english.csv")
RESPONSES = os.path.join("ifeval", "input_response_data_gpt4_20231107_145030.jsonl")


def hostile(size):
    """Responses of about `size` characters meant to hit slow paths: backtracking regexes, per-character Python
    loops, Thai and CJK tokenizers without a break, emoji runs, deep JSON, nothing but line breaks."""
    zh = "今天天气很好我们去公园散步吧" * 800  # detected as Chinese (langdetect reads the first 10k characters)
    th = "วันนี้อากาศดีมากเราไปเดินเล่นที่สวนสาธารณะกัน"
    rep = lambda s: (s * (size // len(s) + 1))[:size]  # noqa: E731
    return {
        "[": rep("["), "newlines": rep("\n"), "stars": rep("*"), "<<": rep("<<"), "letters": rep("a"),
        "initials": rep("a. B. "), "bullets": rep("\n* x"), "dividers": rep(" *** "), "sections": rep("Section 1 "),
        "quotes": rep('"'), "json": rep("[") + rep("]"), "P.S.": rep("p. s. "), "words": rep("word "),
        "zh no end": zh + rep("你"), "zh emoji": zh + rep("😀"), "zh ends": zh + rep("。"), "hi": rep("नमस्ते। "),
        "th spaces": rep(th + " "), "th no space": rep(th), "th lines": rep(th + "\n"),
    }


def load_official(path, shared):
    """Multi-IF's ifeval.py as a module, or (None, why)."""
    if path is None:
        spec = importlib.util.find_spec("evalscope")
        if spec is None:
            return None, "not given (--official PATH to Multi-IF's ifeval.py) and evalscope is not installed"
        path = os.path.join(os.path.dirname(spec.origin), "benchmarks", "multi_if", "ifeval.py")
    nltk_data = os.path.join(shared, "nltk_data")
    if os.path.isdir(nltk_data):
        os.environ.setdefault("NLTK_DATA", nltk_data)
    try:
        import nltk
        from nltk.tokenize import PunktTokenizer
    except ImportError as e:
        return None, f"needs nltk ({e})"
    if os.path.isdir(nltk_data) and nltk_data not in nltk.data.path:
        nltk.data.path.insert(0, nltk_data)
    if "evalscope.utils" not in sys.modules:  # evalscope's copy imports only its logger from evalscope
        utils = types.ModuleType("evalscope.utils")
        utils.get_logger = lambda: logging.getLogger("multi_if")
        sys.modules.setdefault("evalscope", types.ModuleType("evalscope"))
        sys.modules["evalscope.utils"] = utils
    try:
        spec = importlib.util.spec_from_file_location("official_multi_if_ifeval", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        punkt = PunktTokenizer("english")
    except (ImportError, OSError, LookupError) as e:
        return None, f"{path} cannot run here: {type(e).__name__}: {e}"
    module._get_sentence_tokenizer = lambda: punkt
    import langdetect

    langdetect.DetectorFactory.seed = 0
    return module, None


def instances(data, responses):
    """(Turn, raw kwargs as the file has them, response) for every turn of every paired row."""
    from minirlvr.evaluation import multiif

    by_prompt = {}
    with open(responses, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            by_prompt[row["prompt"]] = row["response"]
    with open(data, newline="", encoding="utf-8") as f:
        raw = {row["key"]: row for row in csv.DictReader(f)}
    out = []
    for conv in multiif.read_multiif(data):
        response = by_prompt.get(conv.turns[0].prompt)
        if response is None:
            continue
        for t, turn in enumerate(conv.turns, 1):
            kwargs = [json.loads(k) for k in json.loads(raw[conv.key][f"turn_{t}_kwargs"])]
            out.append((turn, kwargs, response))
    return out


def minirlvr_pass(items):
    from minirlvr.evaluation import multiif
    from minirlvr.verifiers import text

    text.clear_caches()
    for turn, _, response in items:
        multiif.score_turn(turn, response)


def official_pass(ifeval, items, variants):
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # it prints undetectable languages
        _official_pass(ifeval, items, variants)


def _official_pass(ifeval, items, variants):
    random.seed(0)  # the official code draws a letter for letter="#"
    for (turn, kwargs, response), texts in zip(items, variants):
        for iid, kw in zip(turn.instruction_id_list, kwargs):
            inst = ifeval.INSTRUCTION_DICT[iid](iid)
            inst.build_description(**kw)
            bool(response and inst.check_following(response))
            any(t.strip() and inst.check_following(t) for t in texts)


def cpu_time(fn):
    t = time.process_time()
    fn()
    return time.process_time() - t


def speed(args):
    from minirlvr.verifiers import loose_variants

    items = instances(args.data, args.responses)
    n = sum(len(turn.instruction_id_list) for turn, _, _ in items)
    ifeval, why = load_official(args.official, args.shared)
    variants = [loose_variants(r) for _, _, r in items]
    logging.disable(logging.CRITICAL)  # the official code logs every undetectable language
    minirlvr_pass(items)
    if ifeval is not None:
        official_pass(ifeval, items, variants)
    mine, ref = [], []
    for _ in range(args.repeat):
        mine.append(cpu_time(lambda: minirlvr_pass(items)))
        if ifeval is not None:
            ref.append(cpu_time(lambda: official_pass(ifeval, items, variants)))
    mine = min(mine)
    print(f"Multi-IF English, GPT-4's responses: {n} instances ({len(items)} turns), one core, CPU time, "
          f"best of {args.repeat}")
    print(f"  minirlvr : {n / mine:10.0f} checks/s  ({mine:.3f} s per pass)")
    if ifeval is None:
        print(f"  official : not available: {why}; no ratio")
        return {"minirlvr_checks_per_s": n / mine}
    ref = min(ref)
    print(f"  official : {n / ref:10.0f} checks/s  ({ref:.3f} s per pass)")
    print(f"  ratio    : {ref / mine:10.2f}x")
    return {"minirlvr_checks_per_s": n / mine, "official_checks_per_s": n / ref, "ratio": ref / mine}


def hostile_checks(size):
    from minirlvr import verifiers
    from minirlvr.evaluation import multiif
    from minirlvr.evaluation.multiif_text import ThaiUnavailable

    prompt = "Write a short story about a river."
    print(f"\nhostile responses of {size:,} characters ({len(hostile(size))} kinds), one check = strict and loose, "
          "CPU s, after a warm-up on 1,000-character versions (tables and models loaded):")
    worst = {}
    for iid in sorted(multiif.INSTRUCTION_IDS):
        kw = verifiers.sample_kwargs(iid, random.Random(0), prompt)
        turn = multiif.Turn(prompt, (iid,), (kw,))
        for warm_up in (True, False):
            for name, text in hostile(1000 if warm_up else size).items():
                try:
                    dt = cpu_time(lambda: multiif.score_turn(turn, text))
                except ThaiUnavailable:
                    continue
                if not warm_up and dt > worst.get(iid, (0, ""))[0]:
                    worst[iid] = (dt, name)
    for iid, (dt, name) in sorted(worst.items(), key=lambda x: -x[1][0]):
        print(f"  {iid:45s} {dt:7.3f} s  ({name})")
    slowest = max(worst.values())
    print(f"  slowest check: {slowest[0]:.3f} s")
    return {"slowest_s": slowest[0], "per_instruction": {k: v[0] for k, v in worst.items()}}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minirlvr.bench multiif", description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", default=SHARED, help="the reference data folder (default: ../shared/data)")
    p.add_argument("--data", default=None, help=f"Multi-IF CSV (default: SHARED/{DATA})")
    p.add_argument("--responses", default=None, help=f"IFEval's GPT-4 responses, matched by prompt (default: "
                                                      f"SHARED/{RESPONSES})")
    p.add_argument("--official", default=None, help="Multi-IF's ifeval.py (default: an installed evalscope's copy)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--size", type=int, default=1_000_000, help="characters per hostile response")
    p.add_argument("--skip", choices=("speed", "hostile"), default=None, help="leave one part out")
    args = p.parse_args(argv)
    args.data = args.data or os.path.join(args.shared, DATA)
    args.responses = args.responses or os.path.join(args.shared, RESPONSES)
    out = {}
    pinned = hasattr(os, "sched_setaffinity")
    if pinned:
        cores = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(cores)})  # one core
    try:
        if args.skip != "speed":
            out["speed"] = speed(args)
        if args.skip != "hostile":
            out["hostile"] = hostile_checks(args.size)
    finally:
        if pinned:
            os.sched_setaffinity(0, cores)
    return out


if __name__ == "__main__":
    main()
