"""Checkpoints that resume a run exactly, and policies saved as standard folders that load anywhere.

    runs/grpo/checkpoints/step-000050/   state.pt: trainable tensors, optimizer, scheduler, RNG states, data position
                                         + adapter_config.json, adapter_model.safetensors and the tokenizer
    runs/grpo/adapter/                   the final policy: a peft adapter folder with the tokenizer beside it
    runs/grpo/model/                     instead of adapter/ after full fine-tuning: a save_pretrained model folder

Each checkpoint folder is itself a peft adapter folder: `PeftModel.from_pretrained(base, folder)`, `python run.py
eval --adapter folder`, `python run.py attention --adapter folder` and vLLM's LoRA loading read it as it is.
Every folder is filled under a temporary name and then renamed, so a crash never leaves half of one.
This file does not decide when to save; train.py does.
"""

import contextlib
import glob
import os
import random
import shutil
import tempfile

import numpy as np
import torch

from minirlvr.data import nan_for_null, read_jsonl, write_jsonl
from minirlvr.engine.model import ModelError, base_model, load_trainable_state, trainable_state


def rng_state(generator):
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
             "sampler": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state, generator):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    generator.set_state(state["sampler"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def isolated_rng():
    """Run a callback without touching the training's random streams (python, numpy, torch CPU and CUDA): what a
    callback draws can then never change the run, so a resumed run equals a straight one whatever it does."""
    py, npy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if torch.cuda.is_available() else []):
        yield
    random.setstate(py)
    np.random.set_state(npy)


def model_signature(model):
    c = getattr(model, "config", None)
    keys = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size")
    return {k: getattr(c, k, None) for k in keys}


def _write_folder(final, fill):
    """Fill a temporary sibling folder, then rename it to `final` (an existing `final` is replaced)."""
    parent = os.path.dirname(os.path.abspath(final))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp-")
    try:
        fill(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if os.path.exists(final):  # after a resume that re-ran steps: the new folder is the same or a later state
        old = tempfile.mkdtemp(dir=parent, prefix=".old-")
        os.rename(final, os.path.join(old, "x"))
        os.rename(tmp, final)
        shutil.rmtree(old)
    else:
        os.rename(tmp, final)
    return final


def save_policy(model, tokenizer, folder):
    """A peft adapter folder (LoRA) or a full model folder, with the tokenizer beside it."""
    if hasattr(model, "peft_config"):
        model.save_pretrained(folder)
    else:
        base_model(model).save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)


def policy_folder(run_dir, model):
    return os.path.join(run_dir, "adapter" if hasattr(model, "peft_config") else "model")


def write_policy(run_dir, model, tokenizer):
    """The final policy folder of a run, written atomically; returns its path."""
    return _write_folder(policy_folder(run_dir, model), lambda tmp: save_policy(model, tokenizer, tmp))


def save_checkpoint(run_dir, step, model, tokenizer, optimizer, scheduler, generator, keep, data_pos):
    """checkpoints/step-XXXXXX: state.pt for an exact resume plus the policy as a loadable folder."""
    root = os.path.join(run_dir, "checkpoints")

    def fill(tmp):
        torch.save({"step": step, "data_pos": data_pos, "trainable": trainable_state(model),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": rng_state(generator), "signature": model_signature(model)}, os.path.join(tmp, "state.pt"))
        save_policy(model, tokenizer, tmp)

    final = _write_folder(os.path.join(root, f"step-{step:06d}"), fill)
    for old in sorted(glob.glob(os.path.join(root, "step-*")))[:-keep]:
        shutil.rmtree(old)
    return final


def load_checkpoint(path, model, optimizer, scheduler, generator):
    """Restore everything save_checkpoint wrote; a checkpoint of another model or LoRA shape is a ModelError."""
    state = torch.load(os.path.join(path, "state.pt"), map_location="cpu", weights_only=False)
    if state["signature"] != model_signature(model):
        raise ModelError(f"checkpoint {path} was written for a different model: {state['signature']} there, "
                         f"{model_signature(model)} here")
    load_trainable_state(model, state["trainable"], path)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"], generator)
    return state["step"]


def truncate_log(path, last_step):
    """Keep the rows of a JSONL log up to `last_step` (rewritten atomically): a resumed run re-logs the steps after
    its checkpoint, and they must not appear twice. Returns the rows kept."""
    if not os.path.exists(path):
        return []
    rows = [r for r in read_jsonl(path) if r.get("step", 0) <= last_step]
    write_jsonl(path, rows)
    # the log holds null where a metric was NaN (strict JSON): the history in memory has NaN, as a straight run's
    return [nan_for_null(r) for r in rows]
