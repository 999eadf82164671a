"""`python run.py plan --preset NAME [--gpu-gb 12|16|24]`: the GPU memory a preset's run needs, by arithmetic.

The estimate's formulas, and what they assume: minirlvr/pipeline/plan.py.
"""

import argparse
import sys

from minirlvr.cli import HelpFormatter
from minirlvr.pipeline import presets
from minirlvr.pipeline.plan import PlanError, check_settings, read_config, report, settings_from_preset, shape_config_path


def main(argv=None):
    p = argparse.ArgumentParser(formatter_class=HelpFormatter, prog="python run.py plan",
        description="Estimate a preset's GPU memory from its model's config.json (no download): a table of components, "
                    "the peak, whether it fits --gpu-gb, the largest G x completion length that fits, and what to "
                    "lower if it does not. Estimates until a GPU run measures them.")
    p.add_argument("--preset", required=True, help=f"a row of the one preset table (reproduce and train read it "
                                                   f"too): {', '.join(presets.PRESETS)}")
    p.add_argument("--gpu-gb", type=float, help="card size in GiB, e.g. 12, 16 or 24 (default: the preset's gpu_gb, "
                                                "else 24)")
    p.add_argument("--config", help="a model's config.json (default: minirlvr/configs/<the preset's shape>.json)")
    p.add_argument("--G", type=int, help="group size: samples per prompt")
    p.add_argument("--completion-len", type=int, help="L: max new tokens per sample")
    p.add_argument("--prompt-len", type=int, help="P: the longest prompt in tokens")
    p.add_argument("--micro-batch", type=int, help="rollouts per forward/backward")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cuda: bf16 compute (default); cpu: fp32, tensors only")
    args = p.parse_args(argv)
    try:
        preset = presets.get(args.preset)
        if args.config is None and not preset.shape:
            raise PlanError(f"preset {preset.name!r} trains a model you name: pass --config PATH to its config.json"
                            if not preset.model else
                            f"preset {preset.name!r} builds its own model, with no Hugging Face config.json "
                            f"({preset.about}); pass --config PATH to plan its settings on another model")
        m = read_config(args.config if args.config is not None else shape_config_path(preset.shape))
        overrides = {k: v for k, v in (("group_size", args.G), ("max_new_tokens", args.completion_len),
                                       ("prompt_len", args.prompt_len), ("micro_batch_size", args.micro_batch))
                     if v is not None}
        s = settings_from_preset(preset, device=args.device, **overrides)
        check_settings(s)
        gpu_gb = args.gpu_gb if args.gpu_gb is not None else (preset.gpu_gb or 24)
        if gpu_gb <= 0:
            raise PlanError(f"--gpu-gb must be > 0, got {gpu_gb:g}")
        text, _ = report(m, s, gpu_gb, preset.name)
    except (PlanError, presets.PresetError) as e:
        sys.exit(f"error: {e}")
    print(text)


if __name__ == "__main__":
    main()
