"""`python run.py data build|convert`: make training data in the kit's record format.

    python run.py data build --out DIR [--seeds FILE] [--n N] [--max-hard 3] [--max-soft 2] [--seed S]
    python run.py data convert --format ifeval|rlvr|verinstruct --input FILE --out FILE [--unknown soft|error]

build writes the paper's three training splits and a held-out evaluation split from seed tasks (build_data.py;
the kit ships 335 seed tasks, used when --seeds is not given). convert reads a downloaded dataset file
(datasets.py) and writes records: constraints one of the kit's verifiers checks become hard ones, the others
soft ones; VerInstruct's rule checks are kept as code and never run here. Both print what they did.
"""

import argparse
import sys

from minirlvr.cli import HelpFormatter
from minirlvr.datasets import build as build_data

from minirlvr.datasets import convert as datasets
from minirlvr.data import DataError, write_jsonl


def _ids(text):
    return [i.strip() for i in text.split(",") if i.strip()] if text is not None else None


def build_main(argv):
    p = argparse.ArgumentParser(formatter_class=HelpFormatter, prog="python run.py data build", description=build_data.__doc__.split("\n\n")[0])
    p.add_argument("--seeds", help="seed tasks, JSONL with 'prompt' or 'messages' per line "
                                   "(default: the kit's minirlvr/assets/seed_tasks.jsonl)")
    p.add_argument("--out", required=True, help="folder for hard_only/soft_only/mixed/heldout.jsonl and manifest.json")
    p.add_argument("--n", type=int, help="records per training split (default: one per training seed task; "
                                         "more cycles through the tasks with new constraints)")
    p.add_argument("--max-hard", type=int, default=3, help="hard constraints per prompt: 1..max-hard")
    p.add_argument("--max-soft", type=int, default=2, help="soft constraints per prompt: 1..max-soft")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same files")
    p.add_argument("--hard-ids", help="comma-separated instruction ids to draw from (default: the 35 IFEval and "
                                      "extra ids, build_data.DEFAULT_HARD_IDS)")
    p.add_argument("--heldout-ids", help="comma-separated ids used only in heldout.jsonl "
                                         "(default: build_data.DEFAULT_HELDOUT_IDS)")
    p.add_argument("--heldout-fraction", type=float, default=0.1, help="fraction of seed tasks kept for heldout.jsonl")
    p.add_argument("--heldout-n", type=int, help="records in heldout.jsonl (default: one per held-out task)")
    args = p.parse_args(argv)
    try:
        files, manifest = build_data.build(args.seeds, args.n, args.max_hard, args.max_soft, args.seed,
                                           _ids(args.hard_ids), _ids(args.heldout_ids), args.heldout_fraction,
                                           args.heldout_n)
    except DataError as e:
        sys.exit(f"data build: error: {e}")
    build_data.write_build(args.out, files, manifest)
    print(f"data build: {manifest['seed_tasks']} seed tasks ({len(manifest['seed_lines']['heldout'])} held out) "
          f"-> {args.out}")
    for name, s in manifest["splits"].items():
        print(f"  {name + '.jsonl':<16} {s['records']:>6} records, {sum(s['ids'].values()):>6} hard constraints "
              f"({len(s['ids'])} ids), {s['soft_constraints']:>6} soft")
    print(f"  held out of training: ids {', '.join(manifest['heldout_ids'])}; kwargs values of "
          f"{len(manifest['heldout_kwargs'])} ids (manifest.json)")
    return manifest


def convert_main(argv):
    p = argparse.ArgumentParser(formatter_class=HelpFormatter, prog="python run.py data convert",
                                description="Read a downloaded dataset file and write records in the kit's format.")
    p.add_argument("--format", required=True, choices=list(datasets.READERS), help="the file's format (datasets.py)")
    p.add_argument("--input", required=True, help="the dataset file (JSONL)")
    p.add_argument("--out", required=True, help="records (JSONL)")
    p.add_argument("--unknown", choices=["soft", "error"], default="soft",
                   help="a constraint id no kit verifier knows: keep it as a soft constraint, or stop with an error")
    args = p.parse_args(argv)
    try:
        records, stats = datasets.read_dataset(args.input, args.format, args.unknown)
    except (DataError, OSError) as e:
        sys.exit(f"data convert: error: {e}")
    if not records:  # an empty or foreign file must not replace what --out holds with nothing
        sys.exit(f"data convert: error: {args.input}: {stats['rows']} rows gave no record in the {args.format} "
                 f"format; {args.out} was not written" + (f" (rows of other datasets: {dict(stats['skipped'])})"
                                                          if stats.get("skipped") else ""))
    write_jsonl(args.out, records)
    print(f"data convert: {stats['rows']} rows -> {stats['records']} records in {args.out}")
    print(f"  hard (kit verifiers / rule checks): {sum(stats['mapped'].values())}  {dict(stats['mapped'].most_common(8))}")
    print(f"  kept soft (judged):                 {sum(stats['soft'].values())}  {dict(stats['soft'].most_common(8))}")
    if stats["skipped"]:
        print(f"  skipped rows of other datasets:     {dict(stats['skipped'])}")
    return stats


VERBS = {"build": build_main, "convert": convert_main}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    usage = f"usage: python run.py data {{{','.join(VERBS)}}} ...     (data build --help, data convert --help)"
    if not argv or argv[0] not in VERBS:
        if argv and argv[0] in ("-h", "--help"):
            print(f"{usage}\n\n{__doc__.strip()}")
            return
        sys.exit(usage)
    return VERBS[argv[0]](argv[1:])


if __name__ == "__main__":
    main()
