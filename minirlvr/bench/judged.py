"""`python -m minirlvr.bench judged [--official DIR] [--repeat 3] [data options]`: scoring speed of the judged
benchmarks' model-free parts, FollowBench's rule checks against the official ones in the same run, and the
slowest check of each kind on hostile 1 MB responses.

Three parts:
- FollowBench rule checks (followbench_rules.py) against the official code/rule_based_evaluation.py of
  YJiangcm/FollowBench, on the same (item, response) pairs: every rule-scored English item with 24 responses
  made from its target and from sentences built to pass or fail its constraints (seeded). `--official` names
  the folder holding the official rule_based_evaluation.py and utils.py (FollowBench's code/); it runs in a child
  process (this process never imports it). Both sides: a warm-up pass, then the best of `--repeat` passes, in CPU
  seconds of a process pinned to one core; the verdicts of the two sides are compared and their differences
  counted. Without `--official` only the kit is timed.
- CFBench: the kit's official parser and metrics over the 60 released judgements (no baseline: the official
  script cannot run without its model APIs).
- Hostile responses: 1 MB texts built to make scanners backtrack (unclosed '**1' keyword markers, brackets,
  dots, tabs, dates, ...), each scored by every kit check that could read it: every FollowBench rule at levels
  1-5, the FollowBench judge-answer parser, CFBench's parsers. The slowest check is reported per text with
  "under 1 s" (a printed figure, not a test: machines differ).
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time

from minirlvr.bench.measure import SHARED_DATA, run_child

SHARED = SHARED_DATA
FOLLOWBENCH = os.path.join(SHARED, "followbench", "data")
CFBENCH = os.path.join(SHARED, "cfbench", "judge")
WORDS = ("We the Potter actor films lavish has have is running operation stuff in bus activations transformer "
         "Newton Stewart e.g. Mr. Dr. quickly -ly well innovation creates jobs across towns").split()
MB = 1 << 20


# ---------------------------------------------------------------------------------------------- FollowBench pairs


def rule_pairs(folder, per_item=24, seed=0):
    """[(category, source, example_id, level, target, response)] for every rule-scored item of `folder`."""
    from minirlvr.evaluation import followbench as fb
    from minirlvr.evaluation import followbench_rules as rules

    rnd = random.Random(seed)
    out = []
    for it in fb.read_folder(folder):
        if it.level == 0 or not fb.by_rule(it):
            continue
        texts = [it.target, it.target + "\n", it.target.upper(), ""]
        if it.category == "example":
            head, tail = rules.example_template(it.target)[:2]
            texts += [head + "an answer" + tail, head + "two\nlines" + tail]
        while len(texts) < per_item:
            n = rnd.randint(1, 5)
            sents = [" ".join(rnd.choice(WORDS) for _ in range(rnd.choice((5, 9, 12, 14, 19, 22)))) +
                     rnd.choice(".!?") for _ in range(n)]
            if rnd.random() < 0.3:
                sents = [f"**{i + 1}) Key:** {s}" for i, s in enumerate(sents)]
            text = rnd.choice((" ", "\n", "\n\n")).join(sents)
            if rnd.random() < 0.3:
                text = text.lower().replace(".", "")
            if rnd.random() < 0.2:
                text += f" ({rnd.choice('ABH')}) 01/02/2003 $12 {it.target}"
            texts.append(text)
        out += [(it.category, it.source, it.example_id, it.level, it.target, t) for t in texts]
    return out


def kit_verdicts(pairs):
    from minirlvr.evaluation.followbench_rules import check

    return [bool(check(c, s, e, lv, r, t)) for c, s, e, lv, t, r in pairs]


def official_verdicts(module, pairs):
    out = []
    for c, s, e, lv, t, r in pairs:
        if c == "example":
            out.append(bool(module.check_match(t.replace("{instruction}\n", ""), r)))
        elif c == "format" and e in (22, 30):
            out.append(bool(module.rule_evaluation_format(r, e, lv)))
        else:
            out.append(bool(getattr(module, f"rule_evaluation_{s}")(r, t, lv)))
    return out


def best_cpu(fn, repeat):
    """(best CPU seconds of `repeat` passes after a warm-up, the last result)."""
    got = fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        got = fn()
        best = min(best, time.process_time() - t)
    return best, got


def child(argv):
    """Child process: time the official rule checks (imported from argv[0]) on the pairs in argv[1]."""
    official, pairs_path, repeat = argv[0], argv[1], int(argv[2])
    pin()
    sys.path.insert(0, official)
    import matplotlib

    matplotlib.use("Agg")  # the official module imports pyplot
    import rule_based_evaluation as module

    with open(pairs_path, encoding="utf-8") as f:
        pairs = [tuple(p) for p in json.load(f)]
    seconds, verdicts = best_cpu(lambda: official_verdicts(module, pairs), repeat)
    print(json.dumps({"seconds": seconds, "verdicts": verdicts}))


def pin():
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def bench_followbench(args):
    pairs = rule_pairs(args.followbench)
    kit_s, kit_v = best_cpu(lambda: kit_verdicts(pairs), args.repeat)
    print(f"FollowBench rule checks: {len(pairs)} (item, response) pairs, {sum(kit_v)} pass; CPU seconds per pass, "
          f"best of {args.repeat}, one core")
    print(f"  kit        {kit_s:8.4f} s   {len(pairs) / kit_s:10.0f} checks/s")
    if not args.official:
        print("  official   not run (pass --official <FollowBench's code/ folder>)")
        return
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(pairs, f)
    try:
        ref = run_child(__spec__.name, ["--child", args.official, f.name, str(args.repeat)], "the official rule checks")
    finally:
        os.unlink(f.name)
    differ = sum(a != b for a, b in zip(kit_v, ref["verdicts"]))
    print(f"  official   {ref['seconds']:8.4f} s   {len(pairs) / ref['seconds']:10.0f} checks/s")
    print(f"  ratio      {ref['seconds'] / kit_s:8.2f}x  (official time / kit time; > 1: the kit is faster)")
    print(f"  verdicts that differ: {differ} of {len(pairs)}")


# ---------------------------------------------------------------------------------------------- CFBench


def bench_cfbench(args):
    import glob

    from minirlvr.evaluation import cfbench as cf

    judgements = [x for p in sorted(glob.glob(os.path.join(args.cfbench, "*_eval.json")))
                  for x in cf.read_judgements(p)]
    if not judgements:
        print(f"CFBench: no *_eval.json in {args.cfbench}")
        return

    def score():
        out = []
        for it, rec in judgements:
            parsed = cf.parse_official(rec["judge_response"], it)
            out.append(cf.item_metrics(parsed.scores, parsed.parsing, it))
        return out

    secs, metrics = best_cpu(score, args.repeat)
    same = sum(m == rec["judge_metric"] for m, (_, rec) in zip(metrics, judgements))
    print(f"CFBench parse + metrics: {len(judgements)} released judgements in {secs * 1e3:.2f} ms CPU "
          f"({len(judgements) / secs:.0f}/s), {same} of {len(judgements)} equal to the released judge_metric "
          f"(no baseline: the official script needs its model APIs)")


# ---------------------------------------------------------------------------------------------- hostile responses


def hostile_texts():
    """1 MB texts that make naive scanners backtrack or blow up."""
    def fill(unit):
        return (unit * (MB // len(unit) + 1))[:MB]

    return {
        "'**1 ' markers, no colon": fill("**1 "),
        "'**1:' then text, one line": fill("**1:") + " a:",
        "'[' only": fill("["),
        "'[' then one ']' at the end": fill("[") + "]",
        "dots": fill("."),
        "words, one sentence": fill("stuff word "),
        "'e.g. ' abbreviations": fill("e.g. "),
        "'(A' unclosed options": fill("(A"),
        "dates without a year": fill("01/02/"),
        "'$' signs": fill("$"),
        "tabs and '1' lines": fill("c\t1\n"),
        "tabs only": fill("\t"),
        "line breaks": fill("\n"),
        "blank-line paragraphs '1.'": fill("1. a\n\n"),
    }


def bench_hostile(args):
    from minirlvr.evaluation import cfbench as cf
    from minirlvr.evaluation import followbench as fb
    from minirlvr.evaluation import followbench_rules as rules

    item = cf.Item(0, "p", "", "hard", [cf.Criterion(f"c{j}", "secondary") for j in range(5)])
    example_target = "{instruction}\n{{'AI assistant': '{answer}'}}"
    checks = []
    for source in rules.RULE_SOURCES:
        target = "['Bonn']" if source == "CONLL2003" else "(A)"
        for lv in range(1, 6):
            checks.append((f"FollowBench {source} L{lv}", lambda r, s=source, lv=lv, t=target:
                           rules.check("mixed", s, 1, lv, r, t)))
    for ex in rules.FORMAT_RULE_IDS:
        for lv in range(1, 6):
            checks.append((f"FollowBench format {ex} L{lv}", lambda r, ex=ex, lv=lv:
                           rules.check("format", "x", ex, lv, r, "")))
    checks.append(("FollowBench example template", lambda r: rules.check_example(r, example_target)))
    for lv in (1, 5):
        checks.append((f"FollowBench judge-answer parser L{lv}", lambda r, lv=lv: fb.parse_judge_answer(r, lv)))
    checks.append(("CFBench official parser", lambda r: cf.parse_official(r, item)))
    checks.append(("CFBench corrected fallback", lambda r: cf.parse_official(r, item, corrected=True)))
    print(f"Hostile 1 MB responses: the slowest of {len(checks)} kit checks on each (wall seconds, one run each)")
    worst_all = 0.0
    for name, text in hostile_texts().items():
        worst, which = 0.0, ""
        for cname, fn in checks:
            t = time.perf_counter()
            fn(text)
            dt = time.perf_counter() - t
            if dt > worst:
                worst, which = dt, cname
        worst_all = max(worst_all, worst)
        print(f"  {name:<30} {worst:8.4f} s  {'under 1 s' if worst < 1 else 'OVER 1 s'}  ({which})")
    print(f"  slowest check overall: {worst_all:.4f} s ({'all under 1 s' if worst_all < 1 else 'NOT all under 1 s'})")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return child(argv[1:])
    p = argparse.ArgumentParser(prog="python -m minirlvr.bench judged", description=__doc__.split("\n\n")[0])
    p.add_argument("--official", help="folder with FollowBench's official rule_based_evaluation.py and utils.py "
                                      "(its code/ folder); without it the official checks are not timed")
    p.add_argument("--followbench", default=FOLLOWBENCH, help="FollowBench's English data folder")
    p.add_argument("--cfbench", default=CFBENCH, help="folder of CFBench's released *_eval.json judgements")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--parts", default="followbench,cfbench,hostile", help="comma-separated parts to run")
    args = p.parse_args(argv)
    parts = set(args.parts.split(","))
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_setaffinity") else None
    pin()
    try:
        if "followbench" in parts:
            bench_followbench(args)
        if "cfbench" in parts:
            bench_cfbench(args)
        if "hostile" in parts:
            bench_hostile(args)
    finally:
        if cores:
            os.sched_setaffinity(0, cores)


if __name__ == "__main__":
    main()
