"""GRPO training as one function: `train(cfg, reward_fn=None, on_step=None, records=None)`.

One step: B records -> prompt ids -> G samples each (own sampler, KV cache) -> rewards -> group advantages
-> reference (adapter off) log-probs -> micro-batches of policy forward + token_logprobs on the final hidden
states + GRPO loss + backward -> clip -> AdamW on the trainable (LoRA) parameters -> one log line, one JSONL
record. Checkpoints are written atomically and `resume=True` continues bit for bit.

    python run.py train --model=path/to/model --data=train.jsonl --steps=200 [--key=value ...]

No trainer class, no callbacks besides `on_step`, no distributed training, no dataloader workers.
"""

import copy
import functools
import glob
import json
import math
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from minirlvr.chat import encode_prompt, eos_token_ids, pad_token_id
from minirlvr.config import ConfigError, TrainConfig, parse_args, to_dict
from minirlvr.data import DataError, append_jsonl, prompt_text, read_jsonl, read_records, write_atomic
from minirlvr.grpo import group_advantages, grpo_loss, loss_denominator
from minirlvr.kernels import token_logprobs
from minirlvr.model import (ModelError, final_hidden, lm_head_weight, load_model, load_trainable_state, pick_device,
                            prepare, reference_mode, trainable_state)
from minirlvr.reward import call_reward, reward_from_config
from minirlvr.sampler import generate, positions


@dataclass
class TrainResult:
    run_dir: str
    history: list  # one metrics dict per logged step (what metrics.jsonl holds)
    model: object
    tokenizer: object
    config: TrainConfig = None
    checkpoints: list = field(default_factory=list)


class TrainError(RuntimeError):
    """Training cannot (or must not) continue; the message says why."""


# ---------------------------------------------------------------------------------------------- helpers


def step_records(records, step, B, seed):
    """The B records of update `step` (1-based): a fresh permutation per pass over the data. A pure function of
    (seed, step), so resuming needs no data-loader state (the checkpoint's data_pos is informative only)."""
    out = []
    for k in range((step - 1) * B, step * B):
        epoch, i = divmod(k, len(records))
        out.append(records[_permutation(len(records), seed + epoch)[i]])
    return out


@functools.lru_cache(maxsize=4)
def _permutation(n, seed):
    return np.random.RandomState(seed).permutation(n)


def sequence_logp(model, prompt_ids, prompt_mask, tokens, mask, temperature, entropy=False):
    """Per-token log-probs (N, L) of `tokens` after the prompts, via final hidden states + token_logprobs.

    Only trained positions (mask = 1) go through the LM head, so neither (N, L, V) logits nor the pads'
    head computation exist. Returns (logp, entropy or None), zeros where mask = 0."""
    P = prompt_ids.shape[1]
    ids = torch.cat([prompt_ids, tokens], 1)  # (N, P+L)
    attn = torch.cat([prompt_mask, mask.long()], 1)  # (N, P+L)
    hidden = final_hidden(model, ids, attn, positions(attn))[:, P - 1:-1]  # (N, L, D): position t predicts token t
    sel = mask.bool()  # (N, L)
    weight = lm_head_weight(model)  # (V, D)
    # The head may keep another dtype than the body's compute dtype (4-bit on GPU: bf16 body, fp32 or bf16 head);
    # the kernel wants one dtype and accumulates in fp32 anyway.
    out = token_logprobs(hidden[sel].to(weight.dtype), weight, tokens[sel], temperature, return_entropy=entropy)
    lp, ent = out if entropy else (out, None)  # (M,)
    logp = torch.zeros(tokens.shape, dtype=torch.float32, device=tokens.device).index_put((sel,), lp.float())
    if ent is not None:
        ent = torch.zeros_like(logp).index_put((sel,), ent.float())
    return logp, ent  # (N, L)


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


def model_signature(model):
    c = getattr(model, "config", None)
    keys = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size")
    return {k: getattr(c, k, None) for k in keys}


def save_checkpoint(run_dir, step, model, optimizer, scheduler, generator, keep, data_pos):
    """checkpoints/step-XXXXXX/state.pt, written in a temp folder and renamed: never half a checkpoint."""
    root = os.path.join(run_dir, "checkpoints")
    os.makedirs(root, exist_ok=True)
    final = os.path.join(root, f"step-{step:06d}")
    tmp = tempfile.mkdtemp(dir=root, prefix=".tmp-")
    torch.save({"step": step, "data_pos": data_pos, "trainable": trainable_state(model), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": rng_state(generator),
                "signature": model_signature(model)}, os.path.join(tmp, "state.pt"))
    if os.path.exists(final):  # only after a resume that re-ran steps; the new one is the same or later state
        shutil.rmtree(final)
    os.rename(tmp, final)
    for old in sorted(glob.glob(os.path.join(root, "step-*")))[:-keep]:
        shutil.rmtree(old)
    return final


def load_checkpoint(path, model, optimizer, scheduler, generator):
    state = torch.load(os.path.join(path, "state.pt"), map_location="cpu", weights_only=False)
    if state["signature"] != model_signature(model):
        raise ModelError(f"checkpoint {path} was written for a different model: {state['signature']} there, "
                         f"{model_signature(model)} here")
    load_trainable_state(model, state["trainable"], path)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"], generator)
    return state["step"]


def peak_memory_gb(device):
    """Peak CUDA allocation on a GPU; the process's peak resident set (Linux ru_maxrss in KiB) on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def nanmean(values):
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else float("nan")


def console_line(m):
    parts = " ".join(f"{k[7:]}={v:.2f}" for k, v in m.items() if k.startswith("reward/"))
    return (f"step {m['step']:>5} | reward {m['reward']:.3f} {parts} | zero_var {m['zero_var']:.2f} | "
            f"kl {m['kl']:.4f} | ent {m['entropy']:.3f} | clip {m['clip_frac']:.3f} | len {m['len']:.1f} | "
            f"no_eos {m['no_eos']:.2f} | tok/s sample {m['sample_tok_s']:.0f} train {m['train_tok_s']:.0f} | "
            f"mem {m['peak_mem_gb']:.2f}G" + (" | SKIPPED (non-finite)" if m["skipped"] else ""))


def prepare_run_dir(cfg):
    """A new run needs an empty (or missing) folder, so a new run never overwrites an old one's files."""
    run_dir = cfg.out_dir
    if os.path.isdir(run_dir) and os.listdir(run_dir) and not cfg.resume:
        raise TrainError(f"run folder {run_dir!r} is not empty: pass --resume=true to continue it, or choose "
                         f"another --out_dir")
    os.makedirs(run_dir, exist_ok=True)
    ckpts = sorted(glob.glob(os.path.join(run_dir, "checkpoints", "step-*")))
    if cfg.resume and not ckpts and os.path.exists(os.path.join(run_dir, "metrics.jsonl")):
        raise TrainError(f"--resume=true but {run_dir!r} has metrics and no checkpoint to resume from")
    return run_dir, (ckpts[-1] if cfg.resume and ckpts else None)


# ---------------------------------------------------------------------------------------------- the loop


def train(cfg, reward_fn=None, on_step=None, records=None, model=None, tokenizer=None):
    """Run GRPO as configured. reward_fn(records, completions) -> (rewards, parts), default hard_reward;
    on_step(step, model, tokenizer) -> dict | None at step 0, every cfg.eval_every steps and at the end.
    `records` replaces cfg.data; a plain HF `model` + `tokenizer` (e.g. tiny_model) replace cfg.model and get
    cfg's LoRA / checkpointing setup here (4-bit needs a folder: quantization happens while loading)."""
    run_dir, resume_from = prepare_run_dir(cfg)
    if records is None:
        if not os.path.isfile(cfg.data):
            raise DataError(f"config key 'data': no such file {cfg.data!r} (a JSONL of records)")
        records = read_records(cfg.data)
    if not records:
        raise DataError(f"no training records ({cfg.data or 'records='})")
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    if model is None:
        model, tokenizer = load_model(cfg)
    else:
        if tokenizer is None or cfg.load_in_4bit:
            raise ConfigError("train(model=...) needs tokenizer=... and load_in_4bit=false")
        model = prepare(model.to(pick_device(cfg.device)), cfg)
    device = next(model.parameters()).device
    reward_fn = reward_fn or reward_from_config(cfg, model, tokenizer)
    ref_model = None
    if not hasattr(model, "disable_adapter") and cfg.beta > 0:  # full fine-tuning: a frozen copy is the reference
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / (cfg.warmup_steps + 1)))
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    eos_ids, pad_id = eos_token_ids(model, tokenizer), pad_token_id(tokenizer)
    temperature = cfg.temperature if cfg.temperature > 0 else 1.0  # greedy sampling: score at temperature 1
    B, G = cfg.prompts_per_step, cfg.group_size

    start, history = 0, []
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    if resume_from:
        start = load_checkpoint(resume_from, model, optimizer, scheduler, generator)
        history = [r for r in read_jsonl(metrics_path) if r["step"] <= start] if os.path.exists(metrics_path) else []
        write_atomic(os.path.join(run_dir, f"config.resume-{start}.json"), json.dumps(to_dict(cfg), indent=2))
        print(f"resumed from {resume_from} at step {start}")
    else:
        write_atomic(os.path.join(run_dir, "config.json"), json.dumps(to_dict(cfg), indent=2))
    defaults = to_dict(TrainConfig())
    print("config (non-default keys):", json.dumps({k: v for k, v in to_dict(cfg).items() if v != defaults[k]}))
    print(f"run {run_dir}: device {device}, {sum(p.numel() for p in params):,} trainable parameters, B={B} G={G}")

    def evaluate(step, record):
        if on_step is not None:
            was_training = model.training
            extra = on_step(step, model, tokenizer) or {}
            model.train(was_training)
            record.update(extra)

    if start == 0 and on_step is not None:
        rec = {"step": 0}
        evaluate(0, rec)
        append_jsonl(metrics_path, rec)
        history.append(rec)

    bad_steps, saved = 0, []
    bar = tqdm(range(start + 1, cfg.steps + 1), initial=start, total=cfg.steps, disable=not cfg.progress,
               desc="grpo", file=sys.stderr)
    for step in bar:
        t0 = time.perf_counter()
        # --- sample G completions per prompt
        batch = step_records(records, step, B, cfg.seed)
        ro = generate(model, [encode_prompt(r, tokenizer, cfg.chat_template) for r in batch], G,
                      cfg.max_new_tokens, eos_ids, pad_id, cfg.temperature, cfg.top_p, cfg.top_k, generator,
                      cfg.stop_strings, tokenizer)
        mask = ro.mask  # (N, L)
        tokens = ro.tokens  # (N, L)
        texts = [tokenizer.decode(t[m.bool()], skip_special_tokens=True) for t, m in zip(tokens, mask)]
        t_sample = time.perf_counter() - t0

        # --- rewards and advantages
        rollout_records = [r for r in batch for _ in range(G)]
        rewards, parts = call_reward(reward_fn, rollout_records, texts)  # (N,)
        adv = group_advantages(rewards, G, cfg.scale_rewards).to(device)  # (N,)

        # --- reference and old log-probs: no grad, the same forward path as the policy pass below
        prompt_ids = ro.prompt_ids.repeat_interleave(G, 0)  # (N, P)
        prompt_mask = ro.prompt_mask.repeat_interleave(G, 0)  # (N, P)
        denom = loss_denominator(mask, cfg.loss_agg).to(device)
        chunks = [slice(i, i + cfg.micro_batch_size) for i in range(0, len(texts), cfg.micro_batch_size)]
        model.eval()
        with torch.no_grad():
            ref_logp = None
            if cfg.beta > 0:
                with reference_mode(model, ref_model):
                    ref_net = ref_model or model
                    ref_logp = torch.cat([sequence_logp(ref_net, prompt_ids[c], prompt_mask[c], tokens[c], mask[c],
                                                        temperature)[0] for c in chunks])  # (N, L)
            # The ratio's denominator is recomputed, not the sampler's logp: the KV-cache decode and the
            # full-sequence forward round differently (bf16 on GPU), and that noise alone would trip the clip.
            # With one epoch per step the policy pass's own detached logp serves (ratio exactly 1).
            old_logp = None
            if cfg.epochs_per_step > 1:
                old_logp = torch.cat([sequence_logp(model, prompt_ids[c], prompt_mask[c], tokens[c], mask[c],
                                                    temperature)[0] for c in chunks])  # (N, L)
        model.train()

        # --- policy passes: micro-batches, one optimizer step per epoch
        t1 = time.perf_counter()
        for _ in range(cfg.epochs_per_step):
            optimizer.zero_grad(set_to_none=True)
            sums = torch.zeros(4, device=device)  # loss, kl, clipped tokens, entropy; summed without a sync
            for c in chunks:
                logp, ent = sequence_logp(model, prompt_ids[c], prompt_mask[c], tokens[c], mask[c], temperature,
                                          entropy=True)  # (n, L)
                old = old_logp[c] if old_logp is not None else logp.detach()
                loss, st = grpo_loss(logp, old, None if ref_logp is None else ref_logp[c], adv[c], mask[c], denom,
                                     cfg.clip_low, cfg.clip_high, cfg.beta, cfg.loss_agg)
                loss.backward()
                sums += torch.stack([loss.detach(), st.kl, st.clipped, (ent * mask[c]).sum()])
            loss_sum, kl_sum, clipped, ent_sum = sums.tolist()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            skipped = not (math.isfinite(loss_sum) and torch.isfinite(grad_norm))
            if skipped:
                optimizer.zero_grad(set_to_none=True)
                break
            optimizer.step()
        if not skipped:  # the schedule counts updates
            scheduler.step()
        t_train = time.perf_counter() - t1

        # --- log
        n_tok = mask.sum().item()
        lengths = mask.sum(1)  # (N,)
        zero_var = (rewards.view(-1, G).std(1, unbiased=False) == 0).float().mean().item()
        m = {"step": step, "reward": rewards.mean().item(), "reward_std": rewards.std(unbiased=False).item(),
             **{f"reward/{k}": nanmean(v) for k, v in parts.items()}, "zero_var": zero_var,
             "kl": kl_sum / max(n_tok, 1), "entropy": ent_sum / max(n_tok, 1), "clip_frac": clipped / max(n_tok, 1),
             "loss": loss_sum, "grad_norm": float(grad_norm), "len": lengths.float().mean().item(),
             "no_eos": 1.0 - ro.stopped.float().mean().item(), "sample_tok_s": n_tok / t_sample,
             "train_tok_s": n_tok * cfg.epochs_per_step / t_train, "peak_mem_gb": peak_memory_gb(device),
             "lr": scheduler.get_last_lr()[0], "skipped": skipped, "time_s": time.perf_counter() - t0,
             **(getattr(reward_fn, "last_metrics", None) or {})}  # a reward's own per-step scalars (e.g. judge canaries)
        bad_steps = bad_steps + 1 if skipped else 0
        if cfg.rollouts_every and step % cfg.rollouts_every == 0:
            for n in range(0, len(texts), max(1, len(texts) // cfg.rollouts_shown))[:cfg.rollouts_shown]:
                row = {"step": step, "prompt": prompt_text(rollout_records[n]), "completion": texts[n],
                       "reward": rewards[n].item(), "parts": {k: v[n] for k, v in parts.items()}}
                append_jsonl(os.path.join(run_dir, "rollouts.jsonl"), row)
                tqdm.write(f"  rollout {n} reward {row['reward']:.2f} {row['parts']}: {texts[n][:200]!r}")
        if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps:
            evaluate(step, m)
        append_jsonl(metrics_path, m)
        history.append(m)
        if cfg.log_every and (step % cfg.log_every == 0 or skipped):
            tqdm.write(console_line(m))
        bar.set_postfix(reward=f"{m['reward']:.3f}", kl=f"{m['kl']:.4f}")
        if bad_steps >= cfg.max_bad_steps:
            raise TrainError(f"stopping at step {step}: {bad_steps} steps in a row had a non-finite loss or "
                             f"gradient (last loss {loss_sum}); lower --lr or check the reward function. "
                             f"Checkpoints and metrics written so far are in {run_dir}")
        if (cfg.ckpt_every and step % cfg.ckpt_every == 0) or step == cfg.steps:
            saved.append(save_checkpoint(run_dir, step, model, optimizer, scheduler, generator, cfg.keep_ckpts,
                                         data_pos=step * B))
    bar.close()
    return TrainResult(run_dir=run_dir, history=history, model=model, tokenizer=tokenizer, config=cfg,
                       checkpoints=saved)


def main(argv):
    try:
        cfg = parse_args(argv)
        train(cfg)
    except (ConfigError, DataError, ModelError, TrainError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main(sys.argv[1:])
