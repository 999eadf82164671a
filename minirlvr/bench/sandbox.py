"""`python -m minirlvr.bench sandbox`: checks/s of the kernel-confined sandbox against the design it replaced, same run.

Three ways to run the same N benign checks in batches of --batch, measured alternately, best of --repeats:
- "before": the design before issue #22, one `python -I` process per batch running its checks one after another
  in that process, batches one after another (rlimits, no confinement; its audit hook is left out, so this
  baseline is a little faster than the old code was);
- "confined_1": run_checks as it runs dataset code, on one worker at a time: the worker inside its namespaces,
  new root and Landlock, forking one child per check that adds its own Landlock layer and rlimits;
- "confined": the same with run_checks' default number of workers at once (--workers; the CPU count, at most 4).
Reported: seconds, checks/s, the ratios before / confined_1 and before / confined, and the extra milliseconds
per check on one worker. All three must
give the same verdicts. This measures throughput only; tests/test_sandbox.py shows what is contained.
"""

import argparse
import json
import subprocess
import sys
import time

from minirlvr.data import to_json
from minirlvr.reward.sandbox import Check, Verdict, run_checks

# The pre-#22 worker's loop, reduced to what costs time: rlimits, then exec each check in this one process.
BEFORE = """
import json, resource, sys
for limit, value in ((resource.RLIMIT_AS, 512 << 20), (resource.RLIMIT_FSIZE, 16 << 20), (resource.RLIMIT_CORE, 0)):
    resource.setrlimit(limit, (value, value))
for line in sys.stdin:
    code, instruction, response = json.loads(line)
    try:
        scope = {"__name__": "dataset_check"}
        exec(compile(code, "<dataset check>", "exec"), scope)
        result = scope["check_following"](instruction, response)
        ok, reason = (result, None) if type(result) is bool else (False, "not a bool")
    except BaseException as e:
        ok, reason = False, type(e).__name__
    print(json.dumps([ok, reason]), flush=True)
"""

CODE = ("import re\n\ndef check_following(instruction, response):\n"
        "    words = re.findall(r'[a-z]+', response.lower())\n    return 'tea' in words and len(words) < 12\n")


def before(checks, batch):
    verdicts = []
    for start in range(0, len(checks), batch):
        jobs = "".join(json.dumps([c.code, c.instruction, c.response]) + "\n" for c in checks[start:start + batch])
        res = subprocess.run([sys.executable, "-I", "-B", "-c", BEFORE], input=jobs, capture_output=True, text=True,
                             check=True, env={"PATH": "/usr/bin:/bin"})
        verdicts += [Verdict(*json.loads(line)) for line in res.stdout.splitlines()]
    return verdicts


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m minirlvr.bench sandbox", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000, help="benign checks")
    p.add_argument("--batch", type=int, default=64, help="checks per worker process")
    p.add_argument("--workers", type=int, default=0, help="workers at once for 'confined' (0: run_checks' default)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="", help="also append the result as one JSON line to this file")
    return p.parse_args(argv)


def main(argv):
    args = parse(argv)
    checks = [Check(CODE, "Mention tea.", f"I would like some {'tea' if k % 3 else 'coffee'} now, number {k}.")
              for k in range(args.n)]
    ways = {"before": lambda: before(checks, args.batch),
            "confined_1": lambda: run_checks(checks, allow=True, batch=args.batch, workers=1),
            "confined": lambda: run_checks(checks, allow=True, batch=args.batch, workers=args.workers or None)}
    expected = [Verdict(bool(k % 3)) for k in range(args.n)]
    times = {name: [] for name in ways}
    for _ in range(args.repeats):
        for name, fn in ways.items():
            t = time.perf_counter()
            got = fn()
            times[name].append(time.perf_counter() - t)
            assert got == expected, f"{name} gave other verdicts"
    best = {name: min(ts) for name, ts in times.items()}
    result = {"n": args.n, "batch": args.batch, "repeats": args.repeats,
              **{f"{name}_s": round(t, 3) for name, t in best.items()},
              **{f"{name}_checks_per_s": round(args.n / t, 1) for name, t in best.items()},
              "ratio_before_over_confined_1": round(best["before"] / best["confined_1"], 3),
              "ratio_before_over_confined": round(best["before"] / best["confined"], 3),
              "extra_ms_per_check_1": round(1000 * (best["confined_1"] - best["before"]) / args.n, 3)}
    print(f"sandbox benchmark: {args.n} benign checks, batches of {args.batch}, best of {args.repeats}")
    for name in ways:
        print(f"  {name:10s} {best[name]:7.3f} s   {args.n / best[name]:8.1f} checks/s")
    print(f"  ratio before / confined: {result['ratio_before_over_confined_1']:.3f} on one worker "
          f"({result['extra_ms_per_check_1']:+.2f} ms per check), {result['ratio_before_over_confined']:.3f} "
          f"with the default workers")
    print(json.dumps(result))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(to_json(result) + "\n")
    return result
