"""`python run.py reproduce --preset NAME [options]` (and `python run.py` = the preset `miniature`): the paper's
whole pipeline (pipeline/reproduce.py) with the parts the preset names.

    python run.py reproduce --preset NAME [--out DIR] [--resume] [--data FILE] [--ifeval FILE] [--group-size N] ...
    python run.py                     the same as: python run.py reproduce --preset miniature
    python run.py --quick | --smoke   the presets miniature-quick / miniature-smoke
"""

import os
import shutil
import sys

from minirlvr.data import DataError
from minirlvr.engine.config import ConfigError
from minirlvr.engine.report_to import REPORT_TO, missing_package
from minirlvr.pipeline import presets
from minirlvr.pipeline.presets import PRESETS, PresetError, get

USAGE = """usage: python run.py reproduce --preset NAME [options]     (python run.py = --preset miniature)

  --preset NAME     one of: {presets}
  --list            print the presets as a table and exit
  --out DIR         run folder (default runs/<preset>)
  --resume          continue an interrupted run in --out: finished stages are kept, runs resume from checkpoints
  --overwrite       start over in an --out that holds an earlier run, deleting it (without --resume or --overwrite,
                    a folder that is not empty is refused: nothing a run made is deleted by accident)
  --quick, --smoke  with the miniature: the presets miniature-quick / miniature-smoke
  --cache DIR       miniature: where SFT models and judges are cached (default runs/cache)
  --threads N       torch CPU threads (default 1 for the miniature: a ~1M-parameter model's ops are too small to
                    gain from more; on a busy 2-core machine 2 threads made one SFT step 4-15x slower than 1. Real
                    presets: 1 on a machine of <= 2 cores, where a GRPO step measured 6-8x faster than with 2
                    under load, else torch's, one per core)
  --workers N       miniature: runs trained at once, each in a process of its own (default: one per --threads
                    cores, 2 on a 2-core machine; 1: one after another in this process). No number changes with it
  --model PATH      real presets: the policy's base (default: the preset's hub id; a local folder works offline)
  --data FILE       real presets: training records (e.g. from `run.py data convert`) instead of the seed tasks
  --ifeval FILE     real presets: IFEval's input_data.jsonl (evaluated with the verifiers)
  --ifbench FILE    real presets: IFBench's IFBench_test.jsonl
  --multiif FILE    real presets: Multi-IF's CSV (three turns, scored by its rules)
  --cfbench FILE    real presets: CFBench's cfbench_data.json (judged by the preset's judge, official prompt)
  --followbench DIR real presets: FollowBench's data/ folder (rule-checked items by rule, the rest judged)
  --report-to NAME  none (default), tensorboard or wandb: every training run's metrics also go there, as with
                    `train --report-to` (runs/<run>/tensorboard; wandb runs named by their folders)

real presets, replacing the row's value (the options `python run.py plan` advises, in the same spelling):
"""


def _option_lines():
    """USAGE's lines for presets.OPTIONS: `--group-size N` and its help."""
    lines = []
    for field, text in presets.OPTIONS.items():
        name = f"{presets.option(field)} {presets.metavar(field)}"
        lines.append(f"  {name:<25} {text}" if len(name) < 26 else f"  {name}\n{' ' * 28}{text}")
    return "\n".join(lines)


USAGE += _option_lines()

SWITCHES = ("--quick", "--smoke", "--resume", "--overwrite", "--list")
VALUES = ("--preset", "--out", "--cache", "--threads", "--workers", "--model", "--data", "--ifeval", "--ifbench",
          "--multiif", "--cfbench", "--followbench", "--report-to")
PRESET_OPTIONS = {presets.option(f): f for f in presets.OPTIONS}  # --group-size -> group_size


class UsageError(ValueError):
    pass


def parse_args(argv):
    """The options as a dict; "set" holds the preset fields the command line replaces ({"group_size": 4})."""
    opts = {"preset": "miniature", "resume": False, "overwrite": False, "out": None, "cache": "runs/cache",
            "threads": None, "workers": None, "model": None, "data": None, "ifeval": None, "ifbench": None,
            "list": False, "multiif": None, "cfbench": None, "followbench": None, "report_to": "none", "set": {}}
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if name in SWITCHES and not eq:
            if name in ("--quick", "--smoke"):
                opts["size"] = name[2:]
            else:
                opts[name[2:]] = True
        elif name in VALUES or name in PRESET_OPTIONS:
            if not eq:
                if not args or args[0].startswith("--"):
                    raise UsageError(f"option {name} needs a value")
                value = args.pop(0)
            if name in PRESET_OPTIONS:
                opts["set"][PRESET_OPTIONS[name]] = presets.option_value(PRESET_OPTIONS[name], value)
            elif name in ("--threads", "--workers"):
                if not value.isdigit() or int(value) < 1:
                    raise UsageError(f"option {name} needs a positive integer, got {value!r}")
                opts[name[2:]] = int(value)
            else:
                opts[name[2:].replace("-", "_")] = value
        else:
            raise UsageError(f"unknown option {arg!r}")
    if "size" in opts:
        if opts["preset"] != "miniature":
            raise UsageError(f"--{opts['size']} goes with the miniature preset, not {opts['preset']!r}")
        opts["preset"] = f"miniature-{opts.pop('size')}"
    if opts["preset"] not in PRESETS:
        raise UsageError(f"unknown preset {opts['preset']!r}; presets: {', '.join(PRESETS)}")
    if opts["report_to"] not in REPORT_TO:
        raise UsageError(f"--report-to takes one of {', '.join(REPORT_TO)}, got {opts['report_to']!r}")
    if missing_package(opts["report_to"]):
        raise UsageError(missing_package(opts["report_to"]))
    opts["out"] = opts["out"] or os.path.join("runs", opts["preset"])
    return opts


def claim_folder(opts):
    """The one rule for an existing --out: empty or missing is used; an earlier run is continued with --resume or
    deleted with --overwrite, and refused otherwise, so one forgotten flag never deletes a long run."""
    out = opts["out"]
    if opts["resume"] and opts["overwrite"]:
        raise UsageError("--resume and --overwrite exclude each other")
    if not os.path.isdir(out) or not os.listdir(out) or opts["resume"]:
        return
    if not opts["overwrite"]:
        raise UsageError(f"--out {out} holds an earlier run ({', '.join(sorted(os.listdir(out))[:4])}, ...): add "
                         f"--resume to continue it, --overwrite to delete it and start over, or choose another --out")
    shutil.rmtree(out)


def make_parts(opts):
    """The parts a preset plugs into the pipeline."""
    if opts["preset"].startswith("miniature"):
        from minirlvr.miniature.parts import MiniatureParts

        given = [f"--{k}" for k in ("model", "data", "ifeval", "ifbench", "multiif", "cfbench", "followbench")
                 if opts[k] is not None] + [presets.option(f) for f in opts["set"]]
        if given:
            raise UsageError(f"{given[0]} is for the real-model presets; the miniature builds its own")
        return MiniatureParts(get(opts["preset"]), opts["cache"], opts["threads"] or 1, workers=opts["workers"])
    if opts["workers"] is not None:
        raise UsageError("--workers is for the miniature: a real preset's runs share one device, one at a time")
    from minirlvr.pipeline.hf_parts import HFParts

    return HFParts(get(opts["preset"], **opts["set"]), opts["out"], model=opts["model"], data=opts["data"],
                   ifeval=opts["ifeval"], ifbench=opts["ifbench"], threads=opts["threads"], multiif=opts["multiif"],
                   cfbench=opts["cfbench"], followbench=opts["followbench"])


def main(argv):
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE.format(presets=", ".join(PRESETS)))
        return
    # the pipeline (torch, matplotlib) is imported past the --help check: --help stays instant
    from minirlvr.engine.model import ModelError
    from minirlvr.pipeline.reproduce import PipelineError, reproduce

    try:
        opts = parse_args(argv)
        if opts["list"]:
            from minirlvr.pipeline.presets import table

            print(table())
            return
        parts = make_parts(opts)
        claim_folder(opts)
        reproduce(parts, opts["preset"], opts["out"], opts["resume"], opts["report_to"])
    except (UsageError, PresetError) as e:
        sys.exit(f"error: {e}\n\n{USAGE.format(presets=', '.join(PRESETS))}")
    except (DataError, ModelError, ConfigError, PipelineError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main(sys.argv[1:])
