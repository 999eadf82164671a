"""`python run.py plan --preset NAME [--gpu-gb 12|16|24] [--group-size N ...]`: the GPU memory a preset's run needs,
by arithmetic. It takes the options `reproduce` takes over a row (presets.OPTIONS) and prints its advice as reproduce
command lines.

The estimate's formulas, and what they assume: minirlvr/pipeline/plan.py.
"""

import argparse
import sys

from minirlvr.cli import HelpFormatter
from minirlvr.pipeline import presets
from minirlvr.pipeline.plan import PlanError, check_settings, read_config, report, settings_from_preset, shape_config_path

# plan's spellings before it took reproduce's options (issue #25); still read, not listed
OLD_SPELLINGS = {"--G": "group_size", "--completion-len": "max_new_tokens", "--micro-batch": "micro_batch_size"}


def main(argv=None):
    p = argparse.ArgumentParser(formatter_class=HelpFormatter, prog="python run.py plan",
        description="Estimate a preset's GPU memory from its model's config.json (no download): a table of components, "
                    "the peak, whether it fits --gpu-gb, the largest G x completion length that fits, and what to "
                    "lower if it does not, as `python run.py reproduce` command lines that run as printed. The "
                    "options from --steps on are reproduce's own (default: the preset's value). Estimates until a "
                    "GPU run measures them.")
    p.add_argument("--preset", required=True, help=f"a row of the one preset table (reproduce and train read it "
                                                   f"too): {', '.join(presets.PRESETS)}")
    p.add_argument("--gpu-gb", type=float, help="card size in GiB, e.g. 12, 16 or 24 (default: the preset's gpu_gb, "
                                                "else 24)")
    p.add_argument("--config", help="a model's config.json (default: minirlvr/configs/<the preset's shape>.json)")
    # the options reproduce takes over a row, in its spelling: the plan of a setting and the run of it read alike
    for field, text in presets.OPTIONS.items():
        p.add_argument(presets.option(field), dest=field, metavar=presets.metavar(field), help=text)
    for old, field in OLD_SPELLINGS.items():
        p.add_argument(old, dest=field, help=argparse.SUPPRESS)
    p.add_argument("--prompt-len", metavar="N", help="P: the longest prompt in tokens (plan only: the data decides it)")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cuda: bf16 compute (default); cpu: fp32, tensors only")
    args = p.parse_args(argv)
    try:
        planned = {f: presets.option_value(f, getattr(args, f)) for f in presets.OPTIONS if getattr(args, f)}
        prompt_len = {"prompt_len": presets.option_value("prompt_len", args.prompt_len)} if args.prompt_len else {}
        preset = presets.get(args.preset, **planned, **prompt_len)
        if args.config is None and not preset.shape:
            raise PlanError(f"preset {preset.name!r} trains a model you name: pass --config PATH to its config.json"
                            if not preset.model else
                            f"preset {preset.name!r} builds its own model, with no Hugging Face config.json "
                            f"({preset.about}); pass --config PATH to plan its settings on another model")
        m = read_config(args.config if args.config is not None else shape_config_path(preset.shape))
        s = settings_from_preset(preset, device=args.device)
        check_settings(s)
        gpu_gb = args.gpu_gb if args.gpu_gb is not None else (preset.gpu_gb or 24)
        if gpu_gb <= 0:
            raise PlanError(f"--gpu-gb must be > 0, got {gpu_gb:g}")
        text, _ = report(m, s, gpu_gb, preset.name, planned)
    except (PlanError, presets.PresetError) as e:
        sys.exit(f"error: {e}")
    print(text)


if __name__ == "__main__":
    main()
