"""`train --report-to tensorboard|wandb`: each logged step's metrics also go to TensorBoard or Weights & Biases, as
TRL's `report_to` does; metrics.jsonl stays the run's record and what these receive is exactly its numbers.

    tensorboard  torch.utils.tensorboard.SummaryWriter into <out_dir>/tensorboard (`tensorboard --logdir runs`)
    wandb        wandb.init(project="minirlvr" or $WANDB_PROJECT, name=<out_dir>, dir=<out_dir>, config=the run's
                 config); WANDB_MODE=offline and wandb's other variables work as wandb documents them

A resumed run writes on from its checkpoint's step: TensorBoard hides the events of the steps after it (they are
re-run, as metrics.jsonl's are), wandb starts a new run. This file does not decide what a step logs (train.py does)
and imports neither package before a run asks for it.
"""

import dataclasses
import importlib
import importlib.util
import os
import sys

REPORT_TO = ("none", "tensorboard", "wandb")
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}  # report_to -> the package it needs


def missing_package(report_to):
    """None, or the error to show when `report_to` needs a package this Python lacks (checked before a run starts)."""
    package = PACKAGES.get(report_to)
    if package is None or package in sys.modules or importlib.util.find_spec(package) is not None:
        return None
    return (f"--report-to {report_to} needs the {package} package, which this Python lacks: pip install {package} "
            f"(in a checkout: pip install -e '.[{report_to}]')")


def scalars(m):
    """A metrics row's numbers (bools as 0/1) by name, without the step."""
    return {k: float(v) for k, v in m.items() if k != "step" and isinstance(v, (int, float))}


class TensorBoard:
    def __init__(self, cfg, run_dir, resumed_at):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: the steps after a resumed run's checkpoint are logged again; their old events are hidden
        self.writer = SummaryWriter(os.path.join(run_dir, "tensorboard"),
                                    purge_step=resumed_at + 1 if resumed_at else None)

    def log(self, m):
        for name, value in scalars(m).items():
            self.writer.add_scalar(name, value, m["step"])
        self.writer.flush()  # a killed run keeps what it logged

    def close(self):
        self.writer.close()


class WandB:
    def __init__(self, cfg, run_dir, resumed_at):
        self.wandb = importlib.import_module("wandb")
        self.wandb.init(project=os.environ.get("WANDB_PROJECT") or "minirlvr", name=os.path.normpath(cfg.out_dir),
                        dir=run_dir, config=dataclasses.asdict(cfg))

    def log(self, m):
        self.wandb.log(scalars(m), step=m["step"])

    def close(self):
        self.wandb.finish()


def open_reporter(cfg, run_dir, resumed_at=0):
    """The reporter cfg.report_to names (None for "none"); resumed_at: the checkpoint's step a resumed run goes on
    from (0: a new run)."""
    if cfg.report_to == "none":
        return None
    return {"tensorboard": TensorBoard, "wandb": WandB}[cfg.report_to](cfg, run_dir, resumed_at)
