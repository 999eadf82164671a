"""One flat training config and `--key=value` overrides over an optional preset or a run's saved config.json.

    cfg = parse_args(["--steps=20", "--lr=3e-4"])
    cfg = parse_args(["--config=runs/grpo/config.json", "--resume=true"])   # a run again, or on from its checkpoint

Unknown keys and values of the wrong type are errors that name the key (a typo must fail at start, not
after an hour of training). The presets are not here: the kit's one preset table is minirlvr/pipeline/presets.py
(train, reproduce and plan read the same rows), which the engine does not import, so `parse_args` takes a function
that gives a preset's values (commands/train.py passes it). This file does not read environment variables: the
command line, the presets and a saved config.json (what each run writes) are the only sources.
"""

import dataclasses
import difflib
import json
from dataclasses import dataclass, fields

from minirlvr.data import read_json_object
from minirlvr.engine.report_to import REPORT_TO, missing_package


@dataclass
class TrainConfig:
    # model
    model: str = ""  # local folder or hub id
    load_in_4bit: bool = False  # NF4 + double quantization (bitsandbytes)
    use_lora: bool = True  # False: full fine-tuning (tiny models only)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: str = "all-linear"  # peft target_modules: "all-linear" or comma-separated module names
    gradient_checkpointing: bool = False
    device: str = "auto"  # auto -> cuda if available else cpu
    threads: int = 0  # torch CPU threads; 0: as the process has them (`run.py train`: the machine's default)
    # data and run
    data: str = ""  # JSONL of records (minirlvr.data.read_records)
    out_dir: str = "runs/grpo"
    chat_template: bool = True  # wrap prompts with the tokenizer's chat template when it has one
    # reward (used when train() is not given a reward_fn): see minirlvr.reward.constraint.reward_from_config
    reward: str = "hard"  # "hard" (verifiers), "soft" (judge), "mixed" (both)
    reward_combine: str = "mean"  # "mean" over a record's constraints, or "product" (VerIF: any failure gives 0)
    judge_model: str = "base"  # "base": the policy's own base with the adapter off; or a model folder / hub id
    judge_mode: str = "pointwise"  # "pointwise" (one constraint per call) or "batched" (all of a record's in one)
    judge_4bit: bool = False  # load a separate judge model in 4-bit
    canaries: int = 0  # hard constraints per step also sent to the judge, to log its agreement with the verifiers
    judge_batch_rows: int = 16  # judge questions answered together (each holds a whole response: memory)
    seed: int = 0
    # sampling
    steps: int = 100
    prompts_per_step: int = 8  # B
    group_size: int = 8  # G
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    stop_strings: tuple = ()  # "--stop_strings=a,b" or a JSON list
    sampler: str = "auto"  # the sampler's decode path: auto, static, compiled or eager (engine/sampler.py)
    # optimization
    lr: float = 1e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0  # linear warmup, then constant (a schedule that does not depend on `steps`)
    grad_clip: float = 1.0
    micro_batch_size: int = 8  # rollouts per forward/backward
    epochs_per_step: int = 1  # PPO-style passes over each batch of rollouts
    # GRPO loss
    beta: float = 0.001  # k3 KL coefficient (VerIF's released GRPO scripts)
    clip_low: float = 0.2
    clip_high: float = 0.28  # DAPO clip-higher
    scale_rewards: bool = True  # divide advantages by the group std (False: Dr. GRPO)
    loss_agg: str = "token"  # "token" (DAPO) or "seq" (original GRPO: mean per sequence, then over sequences)
    mask_truncated: bool = False  # leave samples cut at max_new_tokens (no EOS) out of the loss (DAPO)
    # logging and checkpoints
    log_every: int = 1
    rollouts_every: int = 10
    rollouts_shown: int = 2
    eval_every: int = 0  # 0 = only at start and end
    ckpt_every: int = 50  # 0 = only at the end
    keep_ckpts: int = 2
    resume: bool = False
    max_bad_steps: int = 3  # stop after this many non-finite losses in a row
    progress: bool = True  # tqdm bar
    report_to: str = "none"  # also send each logged step's metrics to "tensorboard" or "wandb" (engine/report_to.py)
    cpu_mmap_threshold_kb: int = 4096  # CPU: glibc maps blocks >= this and unmaps them when freed (0: glibc's default)


# One line per key for `python run.py train --help` (a test checks that every TrainConfig field has one).
HELP = {
    "model": "local folder or hub id",
    "load_in_4bit": "NF4 + double quantization (bitsandbytes)",
    "use_lora": "false: full fine-tuning (tiny models only)",
    "lora_r": "LoRA rank",
    "lora_alpha": "LoRA scale: the adapter's update is multiplied by lora_alpha / lora_r",
    "lora_dropout": "dropout on the LoRA branch's input",
    "lora_targets": 'peft target_modules: "all-linear" or comma-separated module names',
    "gradient_checkpointing": "recompute activations in the backward pass: less memory, more time",
    "device": "auto -> cuda if available else cpu",
    "threads": "torch CPU threads; 0: the machine's default (1 on a machine of <= 2 cores, where a GRPO step "
               "measured 6-8x faster than with 2 under load; else torch's, one per core)",
    "data": "JSONL of records (minirlvr.data.read_records)",
    "out_dir": "run folder: config, metrics, rollouts, checkpoints, the final adapter",
    "chat_template": "wrap prompts with the tokenizer's chat template when it has one",
    "reward": '"hard" (verifiers), "soft" (judge), "mixed" (both)',
    "reward_combine": '"mean" over a record\'s constraints, or "product" (VerIF: any failure gives 0)',
    "judge_model": '"base": the policy\'s own base with the adapter off; or a model folder / hub id',
    "judge_mode": '"pointwise" (one constraint per call) or "batched" (all of a record\'s in one)',
    "judge_4bit": "load a separate judge model in 4-bit",
    "canaries": "hard constraints per step also sent to the judge, to log its agreement with the verifiers",
    "judge_batch_rows": "judge questions answered together (each holds a whole response: memory)",
    "seed": "seeds record order, sampling and the LoRA initialization",
    "steps": "GRPO steps (each: B prompts x G samples)",
    "prompts_per_step": "B: prompts per step",
    "group_size": "G: samples per prompt",
    "max_new_tokens": "L: the longest completion, in tokens",
    "temperature": "sampling temperature (0 = greedy)",
    "top_p": "nucleus sampling: keep the smallest set of tokens with this much probability (1 = off)",
    "top_k": "sample from the k most likely tokens (0 = off)",
    "stop_strings": 'strings that end a completion: "--stop_strings=a,b" or a JSON list',
    "sampler": "decode path: auto (compiled on CUDA, static cache elsewhere), static, compiled, eager (reference)",
    "lr": "AdamW learning rate",
    "weight_decay": "AdamW weight decay",
    "warmup_steps": "linear warmup, then constant (a schedule that does not depend on `steps`)",
    "grad_clip": "clip the gradient norm to this (0 = off)",
    "micro_batch_size": "rollouts per forward/backward",
    "epochs_per_step": "PPO-style passes over each batch of rollouts",
    "beta": "k3 KL coefficient (VerIF's released GRPO scripts)",
    "clip_low": "the ratio is clipped below at 1 - clip_low",
    "clip_high": "the ratio is clipped above at 1 + clip_high (DAPO clip-higher)",
    "scale_rewards": "divide advantages by the group std (false: Dr. GRPO)",
    "loss_agg": '"token" (DAPO) or "seq" (original GRPO: mean per sequence, then over sequences)',
    "mask_truncated": "leave samples cut at max_new_tokens (no EOS) out of the loss (DAPO)",
    "log_every": "one metrics line every this many steps (0 = none)",
    "rollouts_every": "show a few raw rollouts with their reward parts every this many steps (0 = never)",
    "rollouts_shown": "rollouts shown each time",
    "eval_every": "steps between calls of train()'s on_step evaluation (0 = only at start and end)",
    "ckpt_every": "steps between checkpoints (0 = only at the end)",
    "keep_ckpts": "checkpoints kept in out_dir (older ones are deleted)",
    "resume": "continue from the last checkpoint in out_dir",
    "max_bad_steps": "stop after this many non-finite losses in a row",
    "progress": "tqdm progress bar",
    "report_to": '"none", "tensorboard" (<out_dir>/tensorboard) or "wandb" (WANDB_MODE=offline works): each logged '
                 "step's metrics also go there, as TRL's report_to",
    "cpu_mmap_threshold_kb": "CPU only: glibc maps blocks of this size or more and unmaps them when freed, so the "
                             "resident set follows live tensors (engine/malloc.py); 0 leaves glibc's default",
}


class ConfigError(ValueError):
    """A bad command-line key or value; the message names it."""


def _convert(name, typ, text):
    if typ is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"--{name}: expected true/false, got {text!r}")
    if typ is tuple:
        if text.startswith("["):
            try:
                items = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConfigError(f"--{name}: not a JSON list ({e.msg})") from None
            if not all(isinstance(s, str) for s in items):
                raise ConfigError(f"--{name}: expected a list of strings")
            return tuple(items)
        return tuple(s for s in text.split(",") if s)
    try:
        return typ(text)
    except ValueError:
        raise ConfigError(f"--{name}: expected {typ.__name__}, got {text!r}") from None


def _types():
    return {f.name: type(f.default) for f in fields(TrainConfig)}


def make_config(**overrides):
    """A TrainConfig from Python keyword values, with the same checks as the command line."""
    types = _types()
    values = {}
    for key, value in overrides.items():
        if key not in types:
            raise ConfigError(f"unknown config key {key!r}; known keys: {', '.join(types)}")
        typ = types[key]
        if typ is tuple and isinstance(value, list):
            value = tuple(value)
        ok = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ConfigError(f"config key {key!r}: expected {typ.__name__}, got {type(value).__name__} {value!r}")
        values[key] = value
    cfg = TrainConfig(**values)
    check(cfg)
    return cfg


def read_saved(path):
    """The values of a run's saved config.json (to_dict's output), checked as the command line's are: a bad file, an
    unknown key or a wrong type is an error that names the file (and the key)."""
    values = read_json_object(path, "--config", ConfigError)
    try:
        make_config(**values)
    except ConfigError as e:
        raise ConfigError(f"--config: {path}: {e}") from None
    return values


# The spelling every other command uses for loading its model in 4-bit (eval, judge-audit, refine, attention).
ALIASES = {"4bit": "load_in_4bit"}


def parse_args(argv, presets=None):
    """`--preset=NAME` (presets(NAME) gives its values) or `--config=FILE` (a run's saved config.json), applied
    first, then overrides, each `--key=value` or `--key value`; a key may be spelled with dashes (`--max-new-tokens`)
    as other commands spell options, a true/false key given alone is true (`--4bit`, ALIASES' spelling of
    --load_in_4bit). An unknown key names the closest."""
    types = _types()
    preset, saved, overrides = None, None, {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if not arg.startswith("--") or arg == "--":
            raise ConfigError(f"bad argument {arg!r}: expected --key=value or --key value")
        key, eq, text = arg[2:].partition("=")
        key = key.replace("-", "_")
        key = ALIASES.get(key, key)
        if not eq:
            if types.get(key) is bool and (not args or args[0].startswith("--")):
                text = "true"  # a bare switch (--4bit, --use-lora), as the other commands take their flags
            elif not args or args[0].startswith("--"):
                raise ConfigError(f"--{key} needs a value (--{key}=VALUE or --{key} VALUE)")
            else:
                text = args.pop(0)
        if key == "preset":
            preset = text
            continue
        if key == "config":
            saved = text
            continue
        if key not in types:
            close = difflib.get_close_matches(key, list(types) + ["preset", "config"], n=1)
            raise ConfigError(f"unknown config key --{key}" + (f" (did you mean --{close[0]}?)" if close else "")
                              + f"; known keys: {', '.join(types)}")
        overrides[key] = _convert(key, types[key], text)
    if preset is not None and saved is not None:
        raise ConfigError("--preset and --config exclude each other: a run's config.json holds every key")
    if preset is not None and presets is None:
        raise ConfigError("--preset: no preset table given (python run.py train reads minirlvr/pipeline/presets.py)")
    base = presets(preset) if preset is not None else read_saved(saved) if saved is not None else {}
    return make_config(**{**base, **overrides})


def check(cfg):
    """Value checks that a type cannot express."""
    positive = ["steps", "prompts_per_step", "group_size", "max_new_tokens", "micro_batch_size", "epochs_per_step",
                "lora_r", "max_bad_steps", "keep_ckpts"]
    for name in positive:
        if getattr(cfg, name) < 1:
            raise ConfigError(f"config key {name!r} must be >= 1, got {getattr(cfg, name)}")
    for key, allowed in (("reward", ("hard", "soft", "mixed")), ("reward_combine", ("mean", "product")),
                         ("judge_mode", ("pointwise", "batched")),
                         ("sampler", ("auto", "static", "compiled", "eager")), ("report_to", REPORT_TO)):
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"config key {key!r} must be one of {allowed}, got {getattr(cfg, key)!r}")
    if cfg.group_size < 2:
        raise ConfigError(f"config key 'group_size' must be >= 2, got {cfg.group_size}: GRPO's advantage is a reward "
                          f"minus its group's mean, so a group of one is always 0 and nothing is learned")
    if not cfg.lr > 0:
        raise ConfigError(f"config key 'lr' must be > 0, got {cfg.lr}")
    if missing_package(cfg.report_to):
        raise ConfigError(missing_package(cfg.report_to))
    if cfg.threads < 0:
        raise ConfigError(f"config key 'threads' must be >= 0 (0: the machine's default), got {cfg.threads}")
    if cfg.cpu_mmap_threshold_kb < 0:
        raise ConfigError(f"config key 'cpu_mmap_threshold_kb' must be >= 0, got {cfg.cpu_mmap_threshold_kb}")
    if cfg.canaries < 0:
        raise ConfigError(f"config key 'canaries' must be >= 0, got {cfg.canaries}")
    if cfg.loss_agg not in ("token", "seq"):
        raise ConfigError(f"config key 'loss_agg' must be 'token' or 'seq', got {cfg.loss_agg!r}")
    if not 0.0 < cfg.top_p <= 1.0:
        raise ConfigError(f"config key 'top_p' must be in (0, 1], got {cfg.top_p}")
    if cfg.temperature < 0:
        raise ConfigError(f"config key 'temperature' must be >= 0, got {cfg.temperature}")
    if cfg.clip_low < 0 or cfg.clip_high < 0 or cfg.beta < 0:
        raise ConfigError("config keys 'clip_low', 'clip_high' and 'beta' must be >= 0")


def to_dict(cfg):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
