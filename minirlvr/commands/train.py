"""`python run.py train --model=path/to/model --data=train.jsonl --steps=200 [--key=value ...]`: GRPO on one model and
one data file (the loop: minirlvr/train.py), configured by --key=value over an optional --preset.
"""

import json
import sys

from minirlvr.data import DataError
from minirlvr.engine.config import ConfigError, TrainConfig, parse_args


def _shown(value):
    """A default as it would be typed after --key=: true/false, JSON for strings and tuples."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, tuple)):
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    return str(value)


def usage():
    """`python run.py train --help`: the presets, then every config key with its type, default and meaning."""
    import textwrap
    from dataclasses import fields

    from minirlvr.engine.config import HELP, TRAIN_PRESETS

    lines = ["GRPO training of one model on one data file (minirlvr/train.py).", "",
             "usage: python run.py train [--preset=NAME] [--key=value ...]     (or: minirlvr train ...)",
             "  e.g. python run.py train --model=path/to/model --data=train.jsonl --steps=200", "",
             "presets (applied first, then the --key=value overrides):"]
    for name, values in TRAIN_PRESETS.items():
        lines += textwrap.wrap(" ".join(f"{k}={_shown(v)}" for k, v in values.items()), 118,
                               initial_indent=f"  {name:<8}", subsequent_indent=" " * 10)
    rows = [(f"--{f.name}", type(f.default).__name__, _shown(f.default), HELP.get(f.name, ""))
            for f in fields(TrainConfig)]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    lines += ["", "keys (bool: true/false; tuple: a,b or a JSON list):"]
    indent = 2 + sum(width) + 6
    for k, t, d, h in rows:
        lines.append(f"  {k:<{width[0]}}  {t:<{width[1]}}  {d:<{width[2]}}  "
                     + f"\n{' ' * indent}".join(textwrap.wrap(h, 118 - indent)))
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(usage())
        return
    # the loop (torch, transformers) is imported past the --help check: --help stays instant
    from minirlvr.engine.model import ModelError
    from minirlvr.train import TrainError, train

    try:
        cfg = parse_args(argv)
        train(cfg)
    except (ConfigError, DataError, ModelError, TrainError) as e:
        sys.exit(f"error: {e}\n(python run.py train --help lists the presets and keys)")
    except KeyboardInterrupt:
        again = [a for a in argv if not a.startswith("--resume")] + ["--resume=true"]
        sys.exit(f"\ninterrupted: checkpoints written so far are in {cfg.out_dir}; continue from the last one with\n"
                 f"  python run.py train {' '.join(again)}")


if __name__ == "__main__":
    main()
