"""`python -m minirlvr.bench verifiers [--suite ifeval|ifbench|both|hostile] [--repeat 3] [options]`: instruction
checks per second on one core, minirlvr against the reference scorers, IFEval's and IFBench's, each on the
same instances in the same run; or (--suite hostile) the slowest check on each hostile input family at 1 MB,
against a linear scan of the same text.

One "check" = one instruction instance scored strict and loose, as the benchmarks' evaluation_lib does it
(the reference: build the instruction from its kwargs, check the response, then the 8 loose variants until
one passes). IFEval's responses are paired with its records by line, as IFEval ships them; IFBench's by
prompt text (its release has responses for 293 of the 300 prompts). Both sides get a warm-up pass (model
and table loading excluded), then the best of `--repeat` interleaved passes, timed in CPU seconds of this
process pinned to one core (other jobs on the machine do not count); minirlvr's caches are cleared before
every pass so no pass reuses an earlier one's work. The references are the unmodified scorers in the PyPI
package if-verifiable (a test dependency); without it only minirlvr is timed. IFBench's reference cannot
run words:start_verb or ratio:stop_words offline (NLTK's tagger and stop-word list are downloads), so
those two ids are left out of the IFBench timing on both sides.

Hostile suite: for every family of minirlvr.verifiers.hostile at --size characters, one loose check of every
instruction id (kwargs from sample_kwargs with seed 0, as the tests draw them) finds the slowest id; that id is
then timed again, best of --repeat, interleaved with the baseline `len(text.split())` on the same text and with
the same id on a quarter of the size. Reported: the slowest id's seconds, its ratio to the baseline (how many
linear scans one check costs) and its growth from a quarter of the size (about 4 for a linear check, 16 for a
quadratic one). Same CPU-time rules as above.
"""

import argparse
import logging
import os
import random
import time

from minirlvr.bench.measure import SHARED_DATA
from minirlvr.data import prompt_text, read_jsonl, read_records
from minirlvr.verifiers.hostile import FAMILIES as HOSTILE_FAMILIES

SHARED = SHARED_DATA
DATA = os.path.join(SHARED, "ifeval", "input_data.jsonl")
RESPONSES = os.path.join(SHARED, "ifeval", "input_response_data_gpt4_20231107_145030.jsonl")
IFBENCH_DATA = os.path.join(SHARED, "ifbench", "IFBench_test.jsonl")
IFBENCH_RESPONSES = os.path.join(SHARED, "ifbench", "sample_output.jsonl")
IFBENCH_OFFLINE = ("words:start_verb", "ratio:stop_words")  # the reference needs NLTK downloads for these


def load_reference(suite):
    """The reference registry of `suite`, or None. NLTK must find punkt_tab, which is not downloadable here."""
    nltk_data = os.path.join(SHARED, "nltk_data")
    if os.path.isdir(nltk_data):
        os.environ.setdefault("NLTK_DATA", nltk_data)
    logging.getLogger().setLevel(logging.CRITICAL)  # the reference logs every undetectable language
    try:
        import langdetect
        import nltk

        nltk.download = lambda *args, **kwargs: False  # IFBench's reference tries downloads at import
        if suite == "ifeval":
            from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
        else:
            from if_verifiable.ifbench.instructions_registry import INSTRUCTION_DICT
    except ImportError:
        print(f"reference {suite}: not installed (pip install if-verifiable)")
        return None
    if os.path.isdir(nltk_data) and nltk_data not in nltk.data.path:
        nltk.data.path.insert(0, nltk_data)  # nltk may have been imported before NLTK_DATA was set
    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:  # without it the reference raises on its first sentence split
        print(f"reference {suite}: NLTK's punkt_tab not found (not in {nltk_data} nor NLTK's own folders; it cannot "
              f"be downloaded here)")
        return None
    langdetect.DetectorFactory.seed = 0
    return INSTRUCTION_DICT


def reference_pass(registry, pairs, variants):
    random.seed(0)  # the reference draws a random value for some kwargs (a non-letter `letter`, n_start=0)
    for (rec, response), texts in zip(pairs, variants):
        for iid, kw in zip(rec["instruction_id_list"], rec["kwargs"]):
            inst = registry[iid](iid)
            inst.build_description(**{k: v for k, v in kw.items() if v is not None})
            bool(response.strip() and inst.check_following(response))
            any(t.strip() and inst.check_following(t) for t in texts)


def minirlvr_pass(pairs):
    from minirlvr import verifiers
    from minirlvr.verifiers import ifbench_text, text

    text.clear_caches()
    ifbench_text.clear_caches()
    for rec, response in pairs:
        verifiers.score(rec, response)


def cpu_time(fn):
    """CPU seconds of this (single-threaded, pinned) process: other jobs on the machine do not count."""
    t = time.process_time()
    fn()
    return time.process_time() - t


def ifeval_pairs(data, responses):
    records, rows = read_records(data), read_jsonl(responses)
    if len(records) != len(rows):
        raise SystemExit(f"{data} has {len(records)} records but {responses} has {len(rows)} responses")
    return [(rec, row["response"]) for rec, row in zip(records, rows)]


def ifbench_pairs(data, responses, leave_out=IFBENCH_OFFLINE):
    """Records matched to responses by prompt text (up to surrounding whitespace), without `leave_out` ids."""
    by_prompt = {prompt_text(rec).strip(): rec for rec in read_records(data)}
    pairs = []
    for row in read_jsonl(responses):
        rec = by_prompt.get(row["prompt"].strip())
        if rec is None:
            continue
        keep = [j for j, iid in enumerate(rec["instruction_id_list"]) if iid not in leave_out]
        if keep:
            rec = dict(rec, instruction_id_list=[rec["instruction_id_list"][j] for j in keep],
                       kwargs=[rec["kwargs"][j] for j in keep])
            pairs.append((rec, row["response"]))
    return pairs


def measure(name, pairs, registry, repeat):
    from minirlvr.verifiers import loose_variants

    n = sum(len(rec["instruction_id_list"]) for rec, _ in pairs)
    variants = [loose_variants(r) for _, r in pairs]
    minirlvr_pass(pairs)  # warm-up: language profiles, emoji and syllable tables
    if registry is not None:
        reference_pass(registry, pairs, variants)  # warm-up: punkt, langdetect
    mine, ref = [], []
    for _ in range(repeat):  # interleaved, so a burst of load hits both sides alike
        mine.append(cpu_time(lambda: minirlvr_pass(pairs)))
        if registry is not None:
            ref.append(cpu_time(lambda: reference_pass(registry, pairs, variants)))
    mine = min(mine)
    print(f"{name}: {n} instances ({len(pairs)} prompts), one core, CPU time, best of {repeat}")
    print(f"  minirlvr : {n / mine:10.0f} checks/s  ({mine:.3f} s per pass)")
    if registry is None:
        print("  reference: not available (said above); no ratio")
        return {"minirlvr_checks_per_s": n / mine}
    ref = min(ref)
    print(f"  reference: {n / ref:10.0f} checks/s  ({ref:.3f} s per pass)")
    print(f"  ratio    : {ref / mine:10.2f}x")
    return {"minirlvr_checks_per_s": n / mine, "reference_checks_per_s": n / ref, "ratio": ref / mine}


def hostile(families, size, repeat):
    """family -> {"slowest", "seconds", "scan_seconds", "ratio_to_scan", "growth_from_quarter"}."""
    from minirlvr import verifiers
    from minirlvr.verifiers import hostile as H
    from minirlvr.verifiers import ifbench_text, text

    def check(iid, t, kw):
        text.clear_caches()
        ifbench_text.clear_caches()
        return cpu_time(lambda: verifiers.check(iid, t, kw, loose=True))

    kwargs = {iid: verifiers.sample_kwargs(iid, random.Random(0), prompt="Write about tea.") for iid in verifiers.ids()}
    for iid, kw in kwargs.items():  # warm-up: tagger, language profiles, emoji and syllable tables
        verifiers.check(iid, "Warm up, e.g. here. P.S. Done!", kw, loose=True)
    print(f"hostile inputs: the slowest of {len(kwargs)} checks (loose) per family at {size:,} characters, one core, "
          f"CPU time, best of {repeat}; baseline: len(text.split()) of the same text")
    print(f"  {'family':<15} {'slowest check':<44} {'seconds':>8} {'scan s':>9} {'x scan':>8} {'growth 1/4->1':>13}")
    out = {}
    for family in families:
        big, quarter = H.hostile_text(family, size), H.hostile_text(family, size // 4)
        slowest = max(kwargs, key=lambda iid: check(iid, big, kwargs[iid]))
        kw, mine, scan, small = kwargs[slowest], [], [], []
        for _ in range(repeat):
            mine.append(check(slowest, big, kw))
            scan.append(cpu_time(lambda: len(big.split())))
            small.append(check(slowest, quarter, kw))
        mine, scan, small = min(mine), min(scan), min(small)
        row = {"slowest": slowest, "seconds": mine, "scan_seconds": scan, "ratio_to_scan": mine / max(scan, 1e-9),
               "growth_from_quarter": mine / max(small, 1e-9)}
        print(f"  {family:<15} {slowest:<44} {mine:8.3f} {scan:9.5f} {row['ratio_to_scan']:8.0f} "
              f"{row['growth_from_quarter']:13.1f}")
        out[family] = row
    return out


def run(args):
    if args.suite == "hostile":
        return {"hostile": hostile(args.families or HOSTILE_FAMILIES, args.size, args.repeat)}
    out = {}
    if args.suite in ("ifeval", "both"):
        out["ifeval"] = measure("IFEval", ifeval_pairs(args.data, args.responses), load_reference("ifeval"),
                                args.repeat)
    if args.suite in ("ifbench", "both"):
        pairs = ifbench_pairs(args.ifbench_data, args.ifbench_responses)
        print(f"IFBench: {', '.join(IFBENCH_OFFLINE)} left out (the reference cannot run them offline)")
        out["ifbench"] = measure("IFBench", pairs, load_reference("ifbench"), args.repeat)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minirlvr.bench verifiers", description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", choices=("ifeval", "ifbench", "both", "hostile"), default="both")
    p.add_argument("--data", default=DATA, help="IFEval records")
    p.add_argument("--responses", default=RESPONSES, help="IFEval responses, one per record, in order")
    p.add_argument("--ifbench-data", default=IFBENCH_DATA, help="IFBench records")
    p.add_argument("--ifbench-responses", default=IFBENCH_RESPONSES, help="IFBench responses, matched by prompt")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--size", type=int, default=1_000_000, help="hostile suite: characters per input")
    p.add_argument("--families", nargs="+", choices=HOSTILE_FAMILIES, help="hostile suite: these families only "
                   "(default: all)")
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
