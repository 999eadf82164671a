"""The kit's reward scored in Ray actors equals the same reward scored in this process: the pattern for a trainer
that spreads reward work over Ray (OpenRLHF, verl, your own), on a CPU. Needs `pip install ray` beside the kit.

    python scripts/ray_reward_check.py --out /tmp/ray-check --actors 2

Records come from the kit's data build (hard_only.jsonl); each gets completions cut from its own prompt (as is,
lower-cased, upper-cased, without commas, empty), so constraints pass and fail. The completions are split over
--actors Ray actors, each holding one reward function built in the actor (a judge, which needs a GPU, would be
built there too, once per actor). Exits 1 unless every score equals the local one.
This file trains nothing and runs no judge.
"""

import argparse
import os
import sys
import time


class Scorer:
    """A Ray actor's state: the kit's reward function, built once in the actor's process."""

    def __init__(self, kind="hard", combine="mean"):
        from minirlvr.reward import constraint_reward

        self.fn = constraint_reward(kind, combine)  # constraint_reward(kind, combine, judge=...) for soft ones
        self.pid = os.getpid()

    def score(self, records, texts):
        return self.pid, self.fn(records, texts)[0]


def variants(text):
    return [text, text.lower(), text.upper(), text.replace(",", ""), ""]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for the kit's data build")
    p.add_argument("--n", type=int, default=32, help="records")
    p.add_argument("--actors", type=int, default=2)
    args = p.parse_args(argv)
    import ray

    from minirlvr.cli import main as cli
    from minirlvr.data import prompt_text, read_records
    from minirlvr.reward import constraint_reward

    start = time.perf_counter()
    cli(["data", "build", "--out", args.out, "--n", str(args.n)])
    records = [r for r in read_records(os.path.join(args.out, "hard_only.jsonl")) for _ in variants("")]
    texts = [t for r in read_records(os.path.join(args.out, "hard_only.jsonl")) for t in variants(prompt_text(r))]
    local, _ = constraint_reward("hard", "mean")(records, texts)

    ray.init(num_cpus=args.actors, include_dashboard=False, log_to_driver=False)
    try:
        actors = [ray.remote(Scorer).remote() for _ in range(args.actors)]
        chunks = [range(i, len(texts), args.actors) for i in range(args.actors)]  # interleaved shares
        results = ray.get([a.score.remote([records[j] for j in c], [texts[j] for j in c])
                           for a, c in zip(actors, chunks)])
    finally:
        ray.shutdown()
    remote = [None] * len(texts)
    for c, (_, scores) in zip(chunks, results):
        for j, s in zip(c, scores):
            remote[j] = s
    pids = {pid for pid, _ in results}
    same = sum(a == b for a, b in zip(remote, local))
    print(f"ray {ray.__version__}: {len(texts)} completions over {len(pids)} actor processes (pids {sorted(pids)}, "
          f"this process {os.getpid()}); {same} of {len(texts)} scores equal to local scoring; "
          f"{len(set(local))} distinct values; {time.perf_counter() - start:.0f} s")
    return 0 if same == len(texts) and len(pids) == args.actors and os.getpid() not in pids else 1


if __name__ == "__main__":
    sys.exit(main())
