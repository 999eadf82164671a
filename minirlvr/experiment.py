"""The paper's experiment in miniature, on a CPU: does a high-precision (code-checked) reward beat a reward with
an imperfect learned judge in the loop, and does the judge get exploited?

    python run.py                      full experiment (2 seeds per variant): 14.5 min from scratch (2-core CPU, 1 thread)
    python run.py --quick              a reduced one (1 seed, fewer steps): 2.5 min from scratch
    python run.py --smoke              the smallest end-to-end pass (tests)
    options: --resume  --out DIR (default runs/experiment)  --cache DIR (default runs/cache)  --threads N (default 1)

Steps: SFT a ~1M-parameter Qwen2 on the synthetic world (sft.py, cached) -> train the learned judge (judge.py,
cached) -> build the training sets: hard-only, soft-only, mixed, and refined (mixed -> critic -> one soft
constraint per prompt -> pilot learnability filter, refine.py) -> GRPO from the same SFT checkpoint with the
same budget (steps x B x G) and seeds on each, through the kit's engine (`train.train`: own sampler, fused
log-probs, verifiers) -> evaluate every model on held-out prompts with several samples per prompt at the
training temperature -> table (terminal + results.md), results.json, metrics.jsonl, curves.png, config.json.

The reward of a rollout is the mean over its prompt's constraints of pass/fail: hard ones by the verifiers,
soft ones by the learned judge. The world's truth is never in the reward; it is logged next to it
(`reward/true`) and is what the evaluation reports. The main variants train LoRA adapters on the 4-bit NF4 base
(bitsandbytes + peft), the paper's setup (`lora=True`); one extra row runs hard-only GRPO the other way (full
fine-tuning of the fp32 tiny model) with the same budget, so the table shows what each path does at this size.
This file does not define the world, the judge or the GRPO math; it wires them and reports.
"""

import json
import math
import os
import random
import resource
import shutil
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace

import torch

from minirlvr import judge as judge_mod
from minirlvr import refine, world
from minirlvr import sft as sft_mod
from minirlvr.judge import JudgeConfig
from minirlvr.sft import SFTConfig
from minirlvr.data import append_jsonl, read_jsonl, write_atomic, write_jsonl

VARIANTS = ["hard-only", "soft-only", "mixed", "refined"]
POOLS = {"hard-only": "hard", "soft-only": "soft", "mixed": "mixed"}


@dataclass(frozen=True)
class ExperimentConfig:
    preset: str = "full"
    sft: SFTConfig = field(default_factory=SFTConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    seeds: tuple = (0, 1)
    # GRPO (the same for every variant: the same budget)
    steps: int = 60
    prompts_per_step: int = 8  # B
    group_size: int = 8  # G
    max_new_tokens: int = 64
    temperature: float = 1.0
    lr: float = 3e-4  # full fine-tuning
    # k3 KL to the SFT model. Without KL the prototype collapsed onto one template; at 0.02 hard-only rollouts
    # drifted to 9% without EOS (2 seeds), at 0.05 to 0-0.3% with the same held-out hard gain.
    beta: float = 0.05
    micro_batch_size: int = 64
    ckpt_every: int = 20
    pool_size: int = 600  # prompts per training set
    lora: bool = True  # main variants: 4-bit NF4 base + LoRA (True) or full fine-tuning (False)
    lora_lr: float = 3e-3  # LoRA updates a low-rank slice: it needs a larger step than full fine-tuning
    lora_r: int = 8
    extra_seeds: tuple = (0,)  # seeds of the extra hard-only row that uses the other path
    # refinement
    refine_candidates: int = 600
    pilot_samples: int = 4
    # evaluation: held-out prompts x samples at the training temperature
    eval_hard: int = 150
    eval_soft: int = 100
    eval_unseen: int = 100
    eval_samples: int = 4


PRESETS = {
    "full": ExperimentConfig(),
    "quick": ExperimentConfig(preset="quick", sft=SFTConfig(steps=150), judge=JudgeConfig(),
                              seeds=(0,), steps=15, pool_size=200, refine_candidates=200, eval_hard=80,
                              eval_soft=60, eval_unseen=60, eval_samples=2),
    "smoke": ExperimentConfig(preset="smoke", sft=SFTConfig(steps=8, batch_size=16),
                              judge=JudgeConfig(n_records=200, epochs=1), seeds=(0,), steps=2,
                              prompts_per_step=2, group_size=4, max_new_tokens=24, micro_batch_size=8, ckpt_every=1,
                              pool_size=16, refine_candidates=16, pilot_samples=2, eval_hard=6, eval_soft=6,
                              eval_unseen=6, eval_samples=2),
}

USAGE = ("usage: python run.py [--quick | --smoke] [--resume] [--out DIR] [--cache DIR] [--threads N]\n"
         "  --quick      reduced experiment (1 seed, fewer steps)\n"
         "  --smoke      smallest end-to-end pass (for tests)\n"
         "  --resume     continue an interrupted run in --out: finished runs are kept, others resume from checkpoints\n"
         "  --out DIR    run folder (default runs/experiment)\n"
         "  --cache DIR  where SFT models and judges are cached (default runs/cache)\n"
         "  --threads N  torch CPU threads (default 1: a ~1M-parameter model's ops are too small to gain from more;\n"
         "               on a busy 2-core machine 2 threads made one SFT forward+backward 4-15x slower than 1)")


def extra_variant(cfg):
    """The extra hard-only row: the fine-tuning path the main variants do not use."""
    return "hard-only full-FT" if cfg.lora else "hard-only 4bit+LoRA"


def run_tag(name, seed):
    return f"{name.replace(' ', '_').replace('+', '')}-s{seed}"


class UsageError(ValueError):
    pass


def parse_args(argv):
    opts = {"preset": "full", "resume": False, "out": "runs/experiment", "cache": "runs/cache", "threads": 1}
    args = list(argv)
    while args:
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if name in ("--quick", "--smoke", "--resume") and not eq:
            if name == "--resume":
                opts["resume"] = True
            else:
                opts["preset"] = name[2:]
        elif name in ("--out", "--cache", "--threads"):
            if not eq:
                if not args or args[0].startswith("--"):
                    raise UsageError(f"option {name} needs a value")
                value = args.pop(0)
            if name == "--threads":
                if not value.isdigit() or int(value) < 1:
                    raise UsageError(f"option --threads needs a positive integer, got {value!r}")
                value = int(value)
            opts[name[2:]] = value
        else:
            raise UsageError(f"unknown option {arg!r}")
    return opts


# ---------------------------------------------------------------------------------------------- sampling


def sample_texts(model, tokenizer, records, k, max_new_tokens, temperature, seed, rows_per_batch=256):
    """k completions per record with the kit's sampler (prompt-major), plus stopped flags and lengths."""
    from minirlvr.sampler import generate
    from minirlvr.chat import encode_prompt

    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    prompts = [encode_prompt(r, tokenizer, True) for r in records]
    per = max(1, rows_per_batch // k)
    texts, stopped, lengths = [], [], []
    for i in range(0, len(prompts), per):
        ro = generate(model, prompts[i:i + per], k, max_new_tokens, [tokenizer.eos_token_id],
                      tokenizer.pad_token_id, temperature, generator=gen)
        texts += [tokenizer.decode(t[m.bool()], skip_special_tokens=True) for t, m in zip(ro.tokens, ro.mask)]
        stopped += ro.stopped.tolist()
        lengths += ro.mask.sum(1).tolist()
    return texts, stopped, lengths


def mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


# ---------------------------------------------------------------------------------------------- reward


def make_reward(judge):
    """reward_fn(records, completions) for train(): mean pass over the prompt's constraints, soft ones judged.
    parts: hard, soft_judged, soft_true (NaN where a rollout has none), true (the reward with the world's truth
    in place of the judge: what the policy really achieves)."""

    def reward_fn(records, completions):
        judged = judge_mod.judge_soft(judge, records, completions).ok
        rewards, parts = [], {"hard": [], "soft_judged": [], "soft_true": [], "true": []}
        for n, (rec, text) in enumerate(zip(records, completions)):
            t = world.truth(rec, text)
            hard, soft_true = [float(x) for x in t["hard"]], [float(x) for x in t["soft"]]
            soft_j = [float(y) for y in judged[n]]
            rewards.append(mean(hard + soft_j) if hard + soft_j else 0.0)
            parts["true"].append(mean(hard + soft_true) if hard + soft_true else 0.0)
            parts["hard"].append(mean(hard))
            parts["soft_judged"].append(mean(soft_j))
            parts["soft_true"].append(mean(soft_true))
        return rewards, parts

    return reward_fn


# ---------------------------------------------------------------------------------------------- evaluation


def eval_sets(cfg):
    """Held-out prompts: seeds disjoint from every training set's (training sets use seeds 0..99)."""
    return {"hard": world.sample_records("eval_hard", cfg.eval_hard, seed=1001),
            "soft": world.sample_records("eval_soft", cfg.eval_soft, seed=1002),
            "unseen": world.sample_records("eval_unseen", cfg.eval_unseen, seed=1003)}


def evaluate(model, tokenizer, judge, sets, cfg, seed=1234):
    """Held-out metrics of one model. K samples per prompt at the training temperature (greedy flatters)."""
    k = cfg.eval_samples
    out = {}
    recs = sets["hard"]
    texts, stopped, lengths = sample_texts(model, tokenizer, recs, k, cfg.max_new_tokens, cfg.temperature, seed)
    hard = [world.truth(recs[i // k], t)["hard"] for i, t in enumerate(texts)]
    out["hard_prompt"] = mean(all(h) for h in hard)
    out["hard_instr"] = mean(x for h in hard for x in h)
    out["no_eos"] = 1 - mean(stopped)
    out["len"] = mean(lengths)
    out["distinct"] = len(set(texts)) / len(texts)
    out["sample_hard"] = texts[0]

    recs = sets["soft"]
    texts, _, _ = sample_texts(model, tokenizer, recs, k, cfg.max_new_tokens, cfg.temperature, seed + 1)
    true = [world.truth(recs[i // k], t)["soft"][0] for i, t in enumerate(texts)]
    judged = [v[0] for v in judge.check([(recs[i // k], t, recs[i // k]["soft_constraints"][:1])
                                         for i, t in enumerate(texts)]).ok]
    out["soft_true"] = mean(true)
    out["soft_judged"] = mean(judged)
    out["gap"] = out["soft_judged"] - out["soft_true"]
    out["judge_precision"], out["judge_recall"] = judge_mod.precision_recall(judged, true)
    out["n_soft_violations"] = sum(not t for t in true)

    recs = sets["unseen"]
    texts, _, _ = sample_texts(model, tokenizer, recs, k, cfg.max_new_tokens, cfg.temperature, seed + 2)
    ok = [(recs[i // k]["instruction_id_list"][0], world.truth(recs[i // k], t)["hard"][0])
          for i, t in enumerate(texts)]
    out["unseen"] = mean(x for _, x in ok)
    out["unseen_types"] = mean(x for i, x in ok if i in world.UNSEEN_HARD)
    out["unseen_kwargs"] = mean(x for i, x in ok if i not in world.UNSEEN_HARD)
    return out


# ---------------------------------------------------------------------------------------------- data


def training_sets(cfg, model, tokenizer, judge, log):
    """{variant: records}. Training seeds (0, 1, 2) are disjoint from the evaluation seeds (1001..1003)."""
    sets = {v: world.sample_records(kind, cfg.pool_size, seed=i) for i, (v, kind) in enumerate(POOLS.items())}
    t0 = time.time()
    cands = world.sample_records("mixed", cfg.refine_candidates, seed=3)
    kept, dropped = refine.critic(cands, soft_check=lambda c, r: judge.check([(None, r, [c])]).ok[0][0])
    rng = random.Random(0)
    kept = [refine.one_soft(r, rng) for r in kept]
    reward_fn = make_reward(judge)
    k = cfg.pilot_samples
    texts, _, _ = sample_texts(model, tokenizer, kept, k, cfg.max_new_tokens, cfg.temperature, seed=77)
    rewards, _ = reward_fn([r for r in kept for _ in range(k)], texts)
    rates = [mean(rewards[i * k:(i + 1) * k]) for i in range(len(kept))]
    refined = refine.learnable(kept, rates)
    stats = {"candidates": len(cands), "dropped_conflict": dropped["conflict"],
             "dropped_infeasible": dropped["infeasible"], "after_critic": len(kept),
             "dropped_unlearnable": len(kept) - len(refined), "kept": len(refined),
             "pilot_samples": k, "wall_s": round(time.time() - t0, 1)}
    log(f"refined data: {stats['candidates']} mixed prompts -> critic drops {stats['dropped_conflict']} conflicting "
        f"and {stats['dropped_infeasible']} infeasible -> at most one soft constraint each -> pilot ({k} samples) "
        f"drops {stats['dropped_unlearnable']} with pass rate 0 or 1 -> {stats['kept']} prompts")
    if not refined:
        refined = kept  # a degenerate pilot (tiny presets): train on the critic's output rather than nothing
    sets["refined"] = refined
    return sets, stats


# ---------------------------------------------------------------------------------------------- runs


def run_one(name, seed, records, cfg, sft_path, judge, sets, root, resume, log):
    """GRPO of one variant and seed through the engine, then held-out evaluation. Returns the result row."""
    from minirlvr.config import make_config
    from minirlvr.train import TrainError, train

    tag = run_tag(name, seed)
    run_dir = os.path.join(root, "runs", tag)
    done = os.path.join(run_dir, "result.json")
    if resume and os.path.exists(done):
        with open(done) as f:
            log(f"{tag}: finished earlier, kept ({done})")
            return json.load(f)
    if not resume and os.path.exists(run_dir):
        shutil.rmtree(run_dir)  # a fresh experiment replaces its own earlier run folders
    lora = cfg.lora != (name == extra_variant(cfg))
    tcfg = make_config(model=sft_path, load_in_4bit=lora, use_lora=lora, lora_r=cfg.lora_r, lora_alpha=2 * cfg.lora_r,
                       out_dir=run_dir, seed=seed, steps=cfg.steps, prompts_per_step=cfg.prompts_per_step,
                       group_size=cfg.group_size, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                       lr=cfg.lora_lr if lora else cfg.lr, beta=cfg.beta, micro_batch_size=cfg.micro_batch_size,
                       ckpt_every=cfg.ckpt_every, keep_ckpts=1, eval_every=0, log_every=0, rollouts_every=20, rollouts_shown=1,
                       resume=resume and os.path.isdir(run_dir), device="cpu")
    log(f"{tag}: GRPO {cfg.steps} steps x {cfg.prompts_per_step} prompts x {cfg.group_size} samples on "
        f"{len(records)} prompts ({'4-bit NF4 base + LoRA r=%d' % cfg.lora_r if lora else 'full fine-tuning'})")
    t0 = time.time()
    try:
        result = train(tcfg, reward_fn=make_reward(judge), records=records)
    except TrainError as e:
        if not tcfg.resume:
            raise
        log(f"{tag}: cannot resume ({e}); starting it again")
        shutil.rmtree(run_dir)
        result = train(replace(tcfg, resume=False), reward_fn=make_reward(judge), records=records)
    t_train = time.time() - t0
    metrics = evaluate(result.model, result.tokenizer, judge, sets, cfg)
    row = {"variant": name, "seed": seed, "train_s": round(t_train, 1), "wall_s": round(time.time() - t0, 1),
           "train_prompts": len(records), **metrics}
    write_atomic(done, json.dumps(row, indent=1))
    log(f"{tag}: hard {metrics['hard_prompt']:.3f} (prompt) {metrics['hard_instr']:.3f} (instr), soft true "
        f"{metrics['soft_true']:.3f} judged {metrics['soft_judged']:.3f}, unseen {metrics['unseen']:.3f}, "
        f"{row['wall_s']:.0f}s")
    return row


# ---------------------------------------------------------------------------------------------- report


def fmt(values, digits=3):
    vals = [v for v in values if v == v]
    if not vals:
        return "n/a"
    m = mean(vals)
    if len(vals) == 1:
        return f"{m:.{digits}f}"
    sd = math.sqrt(mean((v - m) ** 2 for v in vals))
    return f"{m:.{digits}f} ± {sd:.{digits}f}"


def se(p, n):
    """Binomial standard error over n prompts (the samples of one prompt are correlated, so n is prompts)."""
    return math.sqrt(max(p * (1 - p), 0.0) / max(n, 1))


COLUMNS = [("hard prompt-level", "hard_prompt"), ("hard instr-level", "hard_instr"), ("soft true", "soft_true"),
           ("soft judged", "soft_judged"), ("gap judged−true", "gap"), ("unseen", "unseen"),
           ("unseen types", "unseen_types"), ("unseen kwargs", "unseen_kwargs"), ("no-EOS", "no_eos"),
           ("len", "len")]


def table(base, rows, cfg, judge_stats, refine_stats, sft_meta):
    n_soft = cfg.eval_soft * cfg.eval_samples
    lines = [f"### minirlvr CPU experiment ({cfg.preset}): GRPO {cfg.steps} steps x B={cfg.prompts_per_step} x "
             f"G={cfg.group_size} per run, seeds {list(cfg.seeds)}",
             "",
             f"Judge (learned, {judge_stats['examples']} training examples): on the SFT policy's samples of "
             f"{cfg.eval_soft} held-out soft prompts x {cfg.eval_samples}, violation precision "
             f"{base['judge_precision']:.3f}, recall {base['judge_recall']:.3f} "
             f"({base['n_soft_violations']} true violations of {n_soft}); on held-out grammar answers precision "
             f"{judge_stats['heldout_violation_precision']:.3f}, recall {judge_stats['heldout_violation_recall']:.3f}.",
             f"SFT model: {sft_meta['params'] / 1e6:.2f}M params, {sft_meta['config']['steps']} steps. "
             f"Held-out: {cfg.eval_hard} hard, {cfg.eval_soft} soft, {cfg.eval_unseen} unseen prompts x "
             f"{cfg.eval_samples} samples at T={cfg.temperature}. Values: mean ± sd over seeds. Sampling noise of one "
             f"evaluation (binomial SE over prompts) at the SFT start: hard prompt-level ±{se(base['hard_prompt'], cfg.eval_hard):.3f}, "
             f"soft ±{se(base['soft_true'], cfg.eval_soft):.3f}, unseen ±{se(base['unseen'], cfg.eval_unseen):.3f}.",
             f"Refined data: {refine_stats['candidates']} mixed prompts -> {refine_stats['kept']} "
             f"(critic -{refine_stats['dropped_conflict'] + refine_stats['dropped_infeasible']}, "
             f"pilot -{refine_stats['dropped_unlearnable']}).",
             "",
             "| variant | " + " | ".join(c for c, _ in COLUMNS) + " | wall s/run |",
             "|---" * (len(COLUMNS) + 2) + "|",
             "| SFT start | " + " | ".join(fmt([base[k]]) if k != "len" else f"{base[k]:.1f}" for _, k in COLUMNS)
             + " | |"]
    by = defaultdict(list)
    for r in rows:
        by[r["variant"]].append(r)
    for name, rs in by.items():
        cells = [fmt([r[k] for r in rs], 1 if k == "len" else 3) for _, k in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {fmt([r['wall_s'] for r in rs], 0)} |")
    hard = [r["hard_prompt"] for r in by.get("hard-only", [])]
    if len(hard) == 1:
        lines += ["", f"Hard-only GRPO vs SFT start on held-out hard prompts (prompt-level): "
                      f"{hard[0] - base['hard_prompt']:+.3f} (one seed: no seed spread measured)."]
    elif hard:
        m = mean(hard)
        sd = math.sqrt(mean((v - m) ** 2 for v in hard))
        spread = max(hard) - min(hard)
        lines += ["", f"Hard-only GRPO vs SFT start on held-out hard prompts (prompt-level): {m - base['hard_prompt']:+.3f} "
                      f"(seed sd {sd:.3f}, range {spread:.3f}); above the seed spread: "
                      f"{'yes' if m - base['hard_prompt'] > spread else 'no'}."]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def main(argv):
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    try:
        opts = parse_args(argv)
    except UsageError as e:
        sys.exit(f"error: {e}\n{USAGE}")
    t_start = time.time()
    torch.set_num_threads(opts["threads"])
    cfg = PRESETS[opts["preset"]]
    out = opts["out"]
    os.makedirs(out, exist_ok=True)
    log_path = os.path.join(out, "log.txt")
    if not opts["resume"] and os.path.exists(log_path):
        os.remove(log_path)

    def log(msg):
        from tqdm import tqdm

        tqdm.write(msg)
        with open(log_path, "a") as f:
            f.write(msg + "\n")

    resolved = {"options": opts, "torch_threads": torch.get_num_threads(), **asdict(cfg)}
    write_atomic(os.path.join(out, "config.json"), json.dumps(resolved, indent=1))
    log(f"minirlvr experiment, preset {cfg.preset}, out {out}, {torch.get_num_threads()} torch threads")
    log(json.dumps(resolved))

    from transformers import AutoModelForCausalLM, AutoTokenizer

    sft_path = sft_mod.build_or_load(cfg.sft, opts["cache"], log=log)
    sft_meta = sft_mod.load_meta(sft_path)
    tokenizer = AutoTokenizer.from_pretrained(sft_path)
    model = AutoModelForCausalLM.from_pretrained(sft_path, dtype=torch.float32).eval()
    judge, judge_stats = judge_mod.build_or_load(cfg.judge, sft_path, tokenizer, log=log)
    sets = eval_sets(cfg)

    base_path = os.path.join(out, "sft_eval.json")
    if opts["resume"] and os.path.exists(base_path):
        with open(base_path) as f:
            base = json.load(f)
    else:
        t0 = time.time()
        base = evaluate(model, tokenizer, judge, sets, cfg)
        base["wall_s"] = round(time.time() - t0, 1)
        write_atomic(base_path, json.dumps(base, indent=1))
    log(f"SFT start: hard {base['hard_prompt']:.3f} (prompt) {base['hard_instr']:.3f} (instr), soft true "
        f"{base['soft_true']:.3f} judged {base['soft_judged']:.3f}, unseen {base['unseen']:.3f}; judge violation "
        f"precision {base['judge_precision']:.3f} recall {base['judge_recall']:.3f}")

    data, refine_stats = training_sets(cfg, model, tokenizer, judge, log)
    for name, recs in data.items():
        write_jsonl(os.path.join(out, "data", f"{name}.jsonl"), recs)

    plan = [(v, s) for v in VARIANTS for s in cfg.seeds] + [(extra_variant(cfg), s) for s in cfg.extra_seeds]
    rows = []
    for name, seed in plan:
        records = data["hard-only" if name == extra_variant(cfg) else name]
        rows.append(run_one(name, seed, records, cfg, sft_path, judge, sets, out, opts["resume"], log))

    # all runs' per-step metrics in one file, tagged, for plots and later analysis
    metrics_path = os.path.join(out, "metrics.jsonl")
    if os.path.exists(metrics_path):
        os.remove(metrics_path)
    histories = defaultdict(list)
    for name, seed in plan:
        hist = read_jsonl(os.path.join(out, "runs", run_tag(name, seed), "metrics.jsonl"))
        histories[name].append(hist)
        for h in hist:
            append_jsonl(metrics_path, {"variant": name, "seed": seed, **h})
    from minirlvr.plots import reward_curves

    reward_curves(histories, os.path.join(out, "curves.png"),
                  "red: training reward (judged where soft constraints are judged); blue dashed: world truth")

    text = table(base, rows, cfg, judge_stats, refine_stats, sft_meta)
    wall = time.time() - t_start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    text += (f"\n\nTotal wall time: {wall:.0f} s ({wall / 60:.1f} min), {torch.get_num_threads()} torch threads, "
             f"{cpu:.0f} CPU-seconds used by this process"
             + (" (a --resume invocation: runs finished earlier are not re-timed)." if opts["resume"] else "."))
    write_atomic(os.path.join(out, "results.md"), text + "\n")
    write_atomic(os.path.join(out, "results.json"),
                 json.dumps({"sft": base, "runs": rows, "judge": judge_stats, "refine": refine_stats,
                             "sft_meta": {k: v for k, v in sft_meta.items() if k != "key"},
                             "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}, indent=1))
    print("\n" + text)
    print(f"\nwrote {out}/results.md, results.json, metrics.jsonl, curves.png, config.json")
