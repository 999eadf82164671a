"""`python -m minirlvr.bench verifiers [--data D --responses R --repeat 3]`: instruction checks per second
on one core, minirlvr against the reference IFEval scorer, on the same instances in the same run.

One "check" = one instruction instance scored strict and loose, as IFEval's evaluation_lib does it
(the reference: build the instruction from its kwargs, check the response, then the 8 loose variants
until one passes). Responses are paired with records by line, as IFEval ships them. Both sides get a
warm-up pass (model loading excluded), then the best of `--repeat` interleaved passes, timed in CPU
seconds of this process pinned to one core (other jobs on the machine do not count); minirlvr's caches
are cleared before every pass so no pass reuses an earlier one's work. The reference is the unmodified
Google scorer in the PyPI package if-verifiable (a test dependency); without it only minirlvr is timed.
"""

import argparse
import logging
import os
import random
import time

from minirlvr.data import read_jsonl, read_records

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared", "data")
DATA = os.path.join(SHARED, "ifeval", "input_data.jsonl")
RESPONSES = os.path.join(SHARED, "ifeval", "input_response_data_gpt4_20231107_145030.jsonl")


def load_reference():
    """The reference registry, or None. NLTK must find punkt_tab, which is not downloadable here."""
    nltk_data = os.path.join(SHARED, "nltk_data")
    if os.path.isdir(nltk_data):
        os.environ.setdefault("NLTK_DATA", nltk_data)
    logging.getLogger().setLevel(logging.CRITICAL)  # the reference logs every undetectable language
    try:
        import langdetect
        from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
    except ImportError:
        return None
    langdetect.DetectorFactory.seed = 0
    return INSTRUCTION_DICT


def reference_pass(registry, pairs, variants):
    random.seed(0)  # the reference draws a random letter for non-letter `letter` kwargs
    for (rec, response), texts in zip(pairs, variants):
        for iid, kw in zip(rec["instruction_id_list"], rec["kwargs"]):
            inst = registry[iid](iid)
            inst.build_description(**{k: v for k, v in kw.items() if v is not None})
            bool(response.strip() and inst.check_following(response))
            any(t.strip() and inst.check_following(t) for t in texts)


def minirlvr_pass(pairs):
    from minirlvr import verifiers
    from minirlvr.verifiers.text import clear_caches

    clear_caches()
    for rec, response in pairs:
        verifiers.score(rec, response)


def cpu_time(fn):
    """CPU seconds of this (single-threaded, pinned) process: other jobs on the machine do not count."""
    t = time.process_time()
    fn()
    return time.process_time() - t


def run(args):
    records, rows = read_records(args.data), read_jsonl(args.responses)
    if len(records) != len(rows):
        raise SystemExit(f"{args.data} has {len(records)} records but {args.responses} has {len(rows)} responses")
    pairs = [(rec, row["response"]) for rec, row in zip(records, rows)]
    n = sum(len(rec["instruction_id_list"]) for rec in records)
    from minirlvr.verifiers import loose_variants

    variants = [loose_variants(r) for _, r in pairs]
    registry = load_reference()
    minirlvr_pass(pairs)  # warm-up: langdetect profiles
    if registry is not None:
        reference_pass(registry, pairs, variants)  # warm-up: punkt, langdetect
    mine, ref = [], []
    for _ in range(args.repeat):  # interleaved, so a burst of load hits both sides alike
        mine.append(cpu_time(lambda: minirlvr_pass(pairs)))
        if registry is not None:
            ref.append(cpu_time(lambda: reference_pass(registry, pairs, variants)))
    mine = min(mine)
    print(f"instances: {n} ({len(pairs)} prompts), one core, CPU time, best of {args.repeat}")
    print(f"minirlvr : {n / mine:10.0f} checks/s  ({mine:.3f} s per pass)")
    if registry is None:
        print("reference: not installed (pip install if-verifiable); no ratio")
        return {"minirlvr_checks_per_s": n / mine}
    ref = min(ref)
    print(f"reference: {n / ref:10.0f} checks/s  ({ref:.3f} s per pass)")
    print(f"ratio    : {ref / mine:10.2f}x")
    return {"minirlvr_checks_per_s": n / mine, "reference_checks_per_s": n / ref, "ratio": ref / mine}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minirlvr.bench verifiers")
    p.add_argument("--data", default=DATA)
    p.add_argument("--responses", default=RESPONSES)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    pinned = hasattr(os, "sched_setaffinity")
    if pinned:
        cores = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(cores)})  # one core
    try:
        return run(args)
    finally:
        if pinned:
            os.sched_setaffinity(0, cores)


if __name__ == "__main__":
    main()
