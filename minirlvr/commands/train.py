"""`python run.py train --model=path/to/model --data=train.jsonl --steps=200 [--key=value ...]`: GRPO on one model and
one data file (the loop: minirlvr/train.py), configured by --key=value over an optional --preset, a row of the kit's
one preset table (minirlvr/pipeline/presets.py: the same rows `reproduce` and `plan` read).
"""

import json
import sys

from minirlvr.data import DataError
from minirlvr.engine import config
from minirlvr.engine.config import ConfigError, TrainConfig
from minirlvr.engine.machine import cpu_threads
from minirlvr.pipeline import presets

# train's own presets before the one table, whose names the table gives to something else: the row that replaced each
FORMER = {"tiny": "cpu-smoke"}


def train_presets():
    """The rows `train --preset` takes: all but those whose model the pipeline builds (it has no folder to load)."""
    return {name: p for name, p in presets.PRESETS.items() if p.model not in presets.BUILT}


def preset_values(name):
    """The TrainConfig values of preset row `name` (presets.train_values); a row train cannot run names what can."""
    if name not in presets.PRESETS:
        raise ConfigError(f"unknown preset {name!r}; train's presets: {', '.join(train_presets())}")
    p = presets.PRESETS[name]
    if name in FORMER:
        raise ConfigError(f"--preset={name}: train's own preset {name!r} of before (20 steps on a model you name) is "
                          f"now --preset={FORMER[name]}; {name!r} is the pipeline's row ({p.about}), whose model train "
                          f"cannot load: `python run.py reproduce --preset {name}` runs it")
    if p.model in presets.BUILT:
        raise ConfigError(f"preset {name!r} trains a model the pipeline builds ({p.about}): `python run.py reproduce "
                          f"--preset {name}` runs it; train's presets: {', '.join(train_presets())}")
    return presets.train_values(p)


def parse_args(argv):
    """The TrainConfig of train's command line: --preset=NAME from the one preset table or --config=FILE (a run's
    config.json), then --key=value."""
    return config.parse_args(argv, presets=preset_values)


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

    from minirlvr.engine.config import HELP

    lines = ["GRPO training of one model on one data file (minirlvr/train.py).", "",
             "usage: python run.py train [--preset=NAME | --config=FILE] [--key=value ...]     "
             "(or: minirlvr train ...)",
             "  e.g. python run.py train --model=path/to/model --data=train.jsonl --steps=200",
             "       python run.py train --config=runs/grpo/config.json --resume=true    (a run goes on from its last "
             "checkpoint;", "       without --resume, with another --out_dir: the same run again)",
             "  --config=FILE: a run's saved config.json (every key), then the --key=value overrides", "",
             "presets (the rows of minirlvr/pipeline/presets.py that reproduce and plan read too; applied first, then "
             "the --key=value", "overrides; shown: the keys a preset sets to other than the default):"]
    defaults = config.to_dict(TrainConfig())
    width = max(map(len, train_presets())) + 4
    for name, p in train_presets().items():
        lines += textwrap.wrap(p.about, 118, initial_indent=f"  {name:<{width - 2}}", subsequent_indent=" " * width)
        values = {k: v for k, v in presets.train_values(p).items() if v != defaults[k]}
        lines += textwrap.wrap(" ".join(f"{k}={_shown(v)}" for k, v in values.items()), 118,
                               initial_indent=" " * width, subsequent_indent=" " * width)
    lines.append(f"  (reproduce only, their model is built inside the pipeline: "
                 f"{', '.join(n for n in presets.PRESETS if n not in train_presets())})")
    rows = [(f"--{f.name}", type(f.default).__name__, _shown(f.default), HELP.get(f.name, ""))
            for f in fields(TrainConfig)]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    lines += ["", "keys (bool: true/false; tuple: a,b or a JSON list; --max-new-tokens is --max_new_tokens):"]
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
        cpu_threads(cfg.threads)  # 0: the machine's default (the library's train() leaves 0 to its caller)
        train(cfg)
    except (ConfigError, DataError, ModelError, TrainError) as e:
        sys.exit(f"error: {e}\n(python run.py train --help lists the presets and keys)")
    except KeyboardInterrupt:
        again = [a for a in argv if not a.startswith("--resume")] + ["--resume=true"]
        sys.exit(f"\ninterrupted: checkpoints written so far are in {cfg.out_dir}; continue from the last one with\n"
                 f"  python run.py train {' '.join(again)}")


if __name__ == "__main__":
    main()
