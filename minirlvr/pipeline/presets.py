"""The kit's one preset table: `python run.py reproduce --preset NAME`, `plan --preset NAME` and `train --preset NAME`
all read it, so a name means one thing everywhere. Data in one place, readable as a table.

A preset names the policy, the judge and the critic, the data, the training budget (the same for every arm) and
the evaluation, plus the GPU memory it needs (`python run.py plan --preset NAME` estimates it from the model's
config.json in minirlvr/configs/, with no download). `miniature` (and its -quick / -smoke sizes) is the embedded CPU
experiment (its own world, SFT start and learned judge: see minirlvr/miniature/); `tiny` is a tiny random HF model,
the pipeline's smoke test; `gpu` and `cpu-smoke` train a model the user names (--model); the others are real models
a user downloads. `train --preset NAME` takes a row's training values (`train_values`): every row but those whose
model the pipeline builds (BUILT).

    judge_model / critic_model: "base" = the policy's own base model with the adapter switched off (no second
    copy of the weights: the default on one GPU), or a model id / folder (loaded in 4-bit when load_in_4bit).
OPTIONS are the fields `reproduce` and `plan` take on the command line over a row, spelled alike (`--group-size 4`).
This file holds numbers and their spelling only; pipeline/reproduce.py runs them.
"""

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Preset:
    name: str
    about: str
    model: str  # HF hub id or local folder of the policy's base; "miniature" / "tiny": built by the kit; "": --model
    shape: str  # config file minirlvr/configs/<shape>.json (plan needs no download); "" = not an HF architecture
    load_in_4bit: bool = True  # NF4 + double quantization (bitsandbytes), LoRA on every linear layer
    lora_r: int = 16
    gradient_checkpointing: bool = True
    # data: the kit's seed tasks + constraint sampler (run.py data build), unless --data points at a dataset
    train_prompts: int = 2000
    heldout_prompts: int = 300
    max_hard: int = 3
    max_soft: int = 2
    # judge, critic and the refinement pilot
    judge_model: str = "base"
    judge_mode: str = "pointwise"
    critic_model: str = "base"
    pilot_samples: int = 8
    canaries: int = 4  # hard constraints per step also sent to the judge (its agreement with the verifiers)
    # training: every arm from the same start with the same budget and seeds
    arms: tuple = ("hard-only", "soft-only", "mixed", "refined")
    seeds: tuple = (0,)
    steps: int = 100
    prompts_per_step: int = 8  # B
    group_size: int = 8  # G
    prompt_len: int = 384  # P: the longest prompt in tokens that `plan` budgets for
    max_new_tokens: int = 1024  # L
    micro_batch_size: int = 4
    lr: float = 1e-5
    beta: float = 0.001
    temperature: float = 1.0
    # evaluation (IFEval / IFBench files by path; the held-out split of the built data always)
    eval_max_new_tokens: int = 1280
    eval_batch_rows: int = 64  # evaluation prompts decoded together
    judge_batch_rows: int = 16  # judge and critic questions answered together (each holds a whole response)
    gpu_gb: float = 0.0  # what the preset needs on one GPU; an estimate (plan) until a GPU run measures it


PRESETS = {p.name: p for p in [
    # The miniature (python run.py): its own world, SFT start and learned judge; main arms on the 4-bit base + LoRA.
    # What only the miniature has (SFT, judge, evaluation sizes) is in minirlvr/miniature/parts.py EXTRAS.
    Preset("miniature", "the embedded CPU experiment: ~1M-parameter Qwen2 trained on a synthetic world, learned judge "
           "(python run.py)", model="miniature", shape="", lora_r=8, gradient_checkpointing=False, train_prompts=600,
           heldout_prompts=150, pilot_samples=4, canaries=0, seeds=(0, 1), steps=60, max_new_tokens=64,
           micro_batch_size=64, lr=3e-3, beta=0.05),
    Preset("miniature-quick", "the miniature, reduced: 1 seed, 15 steps (python run.py --quick)", model="miniature",
           shape="", lora_r=8, gradient_checkpointing=False, train_prompts=200, heldout_prompts=80, pilot_samples=4,
           canaries=0, seeds=(0,), steps=15, max_new_tokens=64, micro_batch_size=64, lr=3e-3, beta=0.05),
    Preset("miniature-smoke", "the miniature's smallest end-to-end pass (tests)", model="miniature", shape="",
           lora_r=8, gradient_checkpointing=False, train_prompts=16, heldout_prompts=6, pilot_samples=2, canaries=0,
           seeds=(0,), steps=2, prompts_per_step=2, group_size=4, max_new_tokens=24, micro_batch_size=8, lr=3e-3,
           beta=0.05),
    Preset("tiny", "a tiny random Qwen2 built on the spot: the whole pipeline in a minute on a CPU (smoke test)",
           model="tiny", shape="tiny", load_in_4bit=False, lora_r=4, gradient_checkpointing=False,
           train_prompts=24, heldout_prompts=8, pilot_samples=2, canaries=2, steps=2, prompts_per_step=2,
           group_size=4, prompt_len=128, max_new_tokens=8, micro_batch_size=8, lr=1e-2, beta=0.01,
           eval_max_new_tokens=8),
    Preset("qwen2.5-0.5b", "Qwen2.5-0.5B-Instruct, 4-bit + LoRA: the cheapest real run", model="Qwen/Qwen2.5-0.5B-Instruct",
           shape="qwen2.5-0.5b", max_new_tokens=512, lr=2e-5, gpu_gb=8),
    Preset("qwen2.5-1.5b", "Qwen2.5-1.5B-Instruct, 4-bit + LoRA", model="Qwen/Qwen2.5-1.5B-Instruct",
           shape="qwen2.5-1.5b", max_new_tokens=768, gpu_gb=8),
    Preset("qwen2.5-7b", "Qwen2.5-7B-Instruct, the paper's base model, 4-bit + LoRA (16 GiB by the plan estimate)",
           model="Qwen/Qwen2.5-7B-Instruct", shape="qwen2.5-7b", prompts_per_step=4, max_new_tokens=1024,
           micro_batch_size=2, judge_batch_rows=12, gpu_gb=16),  # 16 judge questions at once: 14.6 GiB (plan)
    Preset("llama-3.2-1b", "Llama-3.2-1B-Instruct, 4-bit + LoRA (another family: the finding should not be "
           "Qwen-specific)", model="meta-llama/Llama-3.2-1B-Instruct", shape="llama-3.2-1b", max_new_tokens=768,
           gpu_gb=8),
    # Settings without a model: the user names one (--model). `gpu` was train's own preset before the one table; so
    # was `cpu-smoke`, under the name `tiny` (which is the pipeline's tiny random model above).
    Preset("gpu", "the paper's setting on one GPU for a model you name (--model): 4-bit + LoRA r=16 on every linear "
           "layer, B=8 x G=8, L=1024", model="", shape=""),
    Preset("cpu-smoke", "a few-second CPU run on a small model you name (--model): 20 steps, B=4 x G=8, L=16",
           model="", shape="", load_in_4bit=False, lora_r=8, gradient_checkpointing=False, train_prompts=24,
           heldout_prompts=8, pilot_samples=2, canaries=0, steps=20, prompts_per_step=4, group_size=8,
           prompt_len=128, max_new_tokens=16, micro_batch_size=32, lr=3e-3, eval_max_new_tokens=16),
]}


BUILT = ("miniature", "tiny")  # models the pipeline builds itself: no folder `train` could load


def train_values(p):
    """The TrainConfig keys (minirlvr/engine/config.py) that preset row `p` sets: what `train --preset NAME` starts
    from and what every run of `reproduce` trains with (which adds the run's own: folder, seed, reward, checkpoints)."""
    values = {"model": p.model} if p.model and p.model not in BUILT else {}  # "": the user's --model
    values.update(load_in_4bit=p.load_in_4bit, use_lora=True, lora_r=p.lora_r, lora_alpha=2 * p.lora_r,
                  gradient_checkpointing=p.gradient_checkpointing, steps=p.steps, prompts_per_step=p.prompts_per_step,
                  group_size=p.group_size, max_new_tokens=p.max_new_tokens, temperature=p.temperature, lr=p.lr,
                  beta=p.beta, micro_batch_size=p.micro_batch_size, judge_model=p.judge_model,
                  judge_mode=p.judge_mode, judge_4bit=p.load_in_4bit, canaries=p.canaries,
                  judge_batch_rows=p.judge_batch_rows)
    return values


class PresetError(ValueError):
    """An unknown preset or override; the message lists what exists."""


# The fields `reproduce` and `plan` take as options over a row (`--group-size 4` replaces group_size): plan prints
# its advice in exactly these spellings, so an advised command line runs as printed.
OPTIONS = {
    "steps": "GRPO steps per run",
    "prompts_per_step": "B: prompts per step",
    "group_size": "G: samples per prompt",
    "max_new_tokens": "L: the longest training completion, in tokens",
    "micro_batch_size": "rollouts per forward/backward",
    "gradient_checkpointing": "recompute activations in the backward pass (less memory, more time)",
    "eval_max_new_tokens": "the longest evaluation (and attention-stage) response, in tokens",
    "eval_batch_rows": "evaluation prompts decoded together",
    "judge_batch_rows": "judge and critic questions answered together (each holds a whole response)",
}


def option(field):
    """The command-line spelling of a preset field: group_size -> --group-size."""
    return "--" + field.replace("_", "-")


def metavar(field):
    """What an option takes: true|false (a switch field) or N."""
    return "true|false" if {f.name: f.type for f in fields(Preset)}[field] is bool else "N"


def option_value(field, text):
    """The value of `option(field) text`: true/false for a switch, else a positive integer; errors name the option."""
    if metavar(field) == "true|false":
        if text.lower() not in ("true", "false"):
            raise PresetError(f"{option(field)} takes true or false, got {text!r}")
        return text.lower() == "true"
    if not text.isdigit() or int(text) < 1:
        raise PresetError(f"{option(field)} needs a positive integer, got {text!r}")
    return int(text)


def options_line(values):
    """OPTIONS values ({field: value}) as a command line spells them: --group-size 4 --gradient-checkpointing true."""
    return " ".join(f"{option(k)} {str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items())


def reproduce_command(name, values):
    """The command line that runs row `name` with OPTIONS `values`, as `reproduce` reads it."""
    return f"python run.py reproduce --preset {name} {options_line(values)}".rstrip()


def get(name, **overrides):
    """The preset `name`, with fields replaced by keyword overrides (e.g. steps=10); unknown names are errors."""
    if name not in PRESETS:
        raise PresetError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    known = {f.name for f in fields(Preset)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise PresetError(f"unknown preset field(s) {bad}; fields: {', '.join(sorted(known))}")
    return replace(PRESETS[name], **overrides)


def table():
    """The presets as a markdown table (README, `python run.py reproduce --list`)."""
    cols = ["name", "model", "load_in_4bit", "lora_r", "group_size", "prompts_per_step", "max_new_tokens", "steps",
            "seeds", "gpu_gb"]
    lines = ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    for p in PRESETS.values():
        lines.append("| " + " | ".join(str(getattr(p, c)) or "(--model)" for c in cols) + " |")
    return "\n".join(lines)
