"""GRPO training as one function: `train(cfg, reward_fn=None, on_step=None, records=None)`.

One step: B records -> prompt ids -> G samples each (own sampler, KV cache) -> rewards -> group advantages
-> reference (adapter off) log-probs -> micro-batches of policy forward + token_logprobs on the final hidden
states + GRPO loss + backward -> clip -> AdamW on the trainable (LoRA) parameters -> one log line, one JSONL
record. In both log-prob passes a micro-batch runs each of its prompts once and the group's completions
against that prompt's KV cache (a shared-prefix forward, engine/model.py `shared_prefix_hidden`; full sequences
under gradient checkpointing). Checkpoints are written atomically and `resume=True` continues bit for bit; the
final policy is saved as a peft adapter folder (`<out_dir>/adapter`, tokenizer beside it) that
PeftModel.from_pretrained loads.

Known, deliberate choices (as in TRL and verl): with top-p/top-k the samples come from the truncated distribution
while the loss uses the untruncated log-probs; rollouts that never emit EOS are trained on every token and
rewarded on the cut text (the `no_eos` metric shows how many; `--mask_truncated=true` leaves them out of the
loss, DAPO's overlong filtering).

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
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from minirlvr.engine.chat import encode_prompt, eos_token_ids, pad_token_id
from minirlvr.engine.config import ConfigError, TrainConfig, to_dict
from minirlvr.engine.checkpoint import isolated_rng, load_checkpoint, save_checkpoint, truncate_log, write_policy
from minirlvr.data import DataError, append_jsonl, iter_jsonl, prompt_text, to_json, validate_record, write_atomic
from minirlvr.engine.grpo import group_advantages, grpo_loss, loss_denominator
from minirlvr.kernels import token_logprobs
from minirlvr.engine.malloc import return_freed_memory
from minirlvr.engine.machine import cpu_threads
from minirlvr.engine.model import (final_hidden, lm_head_weight, load_model, load_trainable_state, pick_device,
                                   prepare, reference_mode, shared_prefix_hidden, shares_prefix, trainable_state)
from minirlvr.engine.report_to import open_reporter
from minirlvr.reward.constraint import call_reward, reward_from_config
from minirlvr.engine.sampler import generate, positions


@dataclass
class TrainResult:
    run_dir: str
    history: list  # one metrics dict per logged step (what metrics.jsonl holds)
    model: object
    tokenizer: object
    config: TrainConfig = None
    checkpoints: list = field(default_factory=list)
    policy_dir: str = ""  # the final policy: a peft adapter folder (LoRA) or a model folder, tokenizer beside it


class TrainError(RuntimeError):
    """Training cannot (or must not) continue; the message says why."""


# ---------------------------------------------------------------------------------------------- helpers


def load_records(cfg, records, check_constraints):
    """The training records, each validated with its place named (file:line, or records[i] when passed in
    memory); with `check_constraints` every hard constraint id and its kwargs are checked by the verifiers too,
    so a typo fails at start instead of scoring 0 for a whole run."""
    if records is None:
        if not os.path.isfile(cfg.data):
            raise DataError(f"config key 'data': no such file {cfg.data!r} (a JSONL of records)")
        rows = [(f"{cfg.data}:{lineno}", row) for lineno, row in iter_jsonl(cfg.data)]
    else:
        rows = [(f"records[{i}]", row) for i, row in enumerate(records)]
    if not rows:
        raise DataError(f"no training records ({cfg.data or 'records='})")
    for where, row in rows:
        validate_record(row, where)
        if check_constraints:
            from minirlvr import verifiers

            for j, (iid, kw) in enumerate(zip(row.get("instruction_id_list", []), row.get("kwargs", []))):
                try:
                    verifiers.validate_kwargs(iid, kw)
                except verifiers.VerifierError as e:
                    raise DataError(f"{where}: field 'instruction_id_list[{j}]' / 'kwargs[{j}]': {e}") from None
    if check_constraints and cfg.reward == "hard" and not any(row.get("instruction_id_list") for _, row in rows):
        source = f"--data={cfg.data}" if records is None else "records="
        raise DataError(f"--reward=hard: no record in {source} has hard constraints (instruction_id_list), so every "
                        f"reward would be 0 and nothing would be learned; use --reward=soft or mixed with a judge")
    if check_constraints and cfg.reward != "hard" and not any(row.get("soft_constraints") for _, row in rows):
        source = f"--data={cfg.data}" if records is None else "records="
        if cfg.reward == "soft":
            raise DataError(f"--reward=soft: no record in {source} has soft_constraints, so the judge has nothing to "
                            f"score; use --reward=hard, or data with soft constraints")
        print(f"note: --reward=mixed but no record in {source} has soft_constraints: only hard constraints pay")
    return [row for _, row in rows]


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


def sequence_logp(model, prompt_ids, prompt_mask, tokens, mask, temperature, entropy=False, prompt_of=None):
    """Per-token log-probs (N, L) of `tokens` after the prompts, via final hidden states + token_logprobs.

    prompt_ids, prompt_mask: (N, P), one prompt per row; or, with prompt_of (N,) naming each row's prompt, (b, P)
    distinct prompts, each then run once for all its rows (`shared_prefix_hidden`) where the model allows it
    (`shares_prefix`: not under gradient checkpointing while training), else repeated and run per row.
    Only trained positions (mask = 1) go through the LM head, so neither (N, L, V) logits nor the pads'
    head computation exist. Returns (logp, entropy or None), zeros where mask = 0."""
    hidden = None
    # where no two rows share a prompt (G = 1, a micro-batch of one row per group) nothing is saved: one full call
    if prompt_of is not None and len(prompt_ids) < len(prompt_of) and shares_prefix(model):
        hidden = shared_prefix_hidden(model, prompt_ids, prompt_mask, prompt_of, tokens, mask)  # (N, L, D)
    if hidden is None:
        if prompt_of is not None:
            prompt_ids, prompt_mask = prompt_ids[prompt_of], prompt_mask[prompt_of]  # (N, P)
        P = prompt_ids.shape[1]
        ids = torch.cat([prompt_ids, tokens], 1)  # (N, P+L)
        attn = torch.cat([prompt_mask, mask.long()], 1)  # (N, P+L)
        hidden = final_hidden(model, ids, attn, positions(attn))[:, P - 1:-1]  # (N, L, D): position t predicts token t
    sel = mask.bool()  # (N, L)
    weight = lm_head_weight(model)  # (V, D)
    # The head may keep another dtype than the body's compute dtype (4-bit on GPU: bf16 body, fp32 or bf16 head);
    # the kernel wants one dtype and accumulates in fp32 anyway. An fp32 head (full fine-tuning) on a GPU goes in
    # as bf16 operands with fp32 accumulation, as autocast would: exact fp32 dots run on CUDA cores, several times
    # slower. The casts are differentiable, so the fp32 weight still gets its gradient.
    dtype = torch.bfloat16 if weight.is_cuda and weight.dtype == torch.float32 else weight.dtype
    out = token_logprobs(hidden[sel].to(dtype), weight.to(dtype), tokens[sel], temperature, return_entropy=entropy)
    lp, ent = out if entropy else (out, None)  # (M,)
    logp = torch.zeros(tokens.shape, dtype=torch.float32, device=tokens.device).index_put((sel,), lp.float())
    if ent is not None:
        ent = torch.zeros_like(logp).index_put((sel,), ent.float())
    return logp, ent  # (N, L)


@dataclass
class StepBatch:
    """One step's N = B*G rollouts, row n from prompt n // G, ready for the log-prob passes."""
    prompt_ids: torch.Tensor  # (B, P) each prompt once
    prompt_mask: torch.Tensor  # (B, P)
    tokens: torch.Tensor  # (N, L)
    mask: torch.Tensor  # (N, L) 1 = a trained action
    chunks: list  # micro-batch slices over the N rows
    group_size: int  # G

    def logp(self, model, c, temperature, entropy=False):
        """sequence_logp of the rows in slice `c` (it may start or end inside a group), each prompt given once."""
        G, rows = self.group_size, range(len(self.tokens))[c]  # Python ints: no device sync
        first, last = rows[0] // G, rows[-1] // G
        prompt_of = torch.arange(rows.start, rows.stop, device=self.tokens.device) // G - first  # (n,)
        return sequence_logp(model, self.prompt_ids[first:last + 1], self.prompt_mask[first:last + 1], self.tokens[c],
                             self.mask[c], temperature, entropy, prompt_of=prompt_of)


def logp_no_grad(model, b, temperature):
    """(N, L) log-probs in eval mode (no dropout), micro-batch by micro-batch."""
    with torch.no_grad():
        return torch.cat([b.logp(model, c, temperature)[0] for c in b.chunks])  # (N, L)


def policy_epochs(model, optimizer, params, b, adv, ref_logp, temperature, cfg):
    """`epochs_per_step` optimizer updates on one batch of rollouts (PPO-style reuse), micro-batch by micro-batch.

    old_logp is the FIRST epoch's own detached logp: in that epoch the ratio is exactly 1 with the same dropout
    masks as the gradient (a separate no-dropout pass would make it differ from 1 by the dropout noise alone), and
    no extra forward is needed. Later epochs see their own fresh dropout masks against it, as any dropout model
    does. If any epoch's loss or gradient is non-finite, every update of the step is undone (weights and AdamW
    state restored) so that the log ("skipped"), the schedule and the weights agree. Entropy is measured on the
    first (on-policy) epoch; loss, KL and clip fraction are the last epoch's."""
    denom = loss_denominator(b.mask, cfg.loss_agg).to(b.mask.device)
    old_logp = torch.zeros_like(b.mask)  # (N, L), filled by the first epoch
    undo = (trainable_state(model), copy.deepcopy(optimizer.state_dict())) if cfg.epochs_per_step > 1 else None
    ent_sum, skipped, grad_norm = 0.0, False, torch.tensor(0.0)
    for epoch in range(cfg.epochs_per_step):
        optimizer.zero_grad(set_to_none=True)
        sums = torch.zeros(4, device=b.mask.device)  # loss, kl, clipped tokens, entropy: summed without a sync
        for c in b.chunks:
            logp, ent = b.logp(model, c, temperature, entropy=epoch == 0)  # (n, L)
            if epoch == 0:
                old_logp[c] = logp.detach()
            loss, st = grpo_loss(logp, old_logp[c], None if ref_logp is None else ref_logp[c], adv[c], b.mask[c],
                                 denom, cfg.clip_low, cfg.clip_high, cfg.beta, cfg.loss_agg)
            loss.backward()
            ent_c = (ent * b.mask[c]).sum() if ent is not None else torch.zeros((), device=sums.device)
            sums += torch.stack([loss.detach(), st.kl, st.clipped, ent_c])
        loss_sum, kl_sum, clipped, ent_e = sums.tolist()
        ent_sum = ent_e if epoch == 0 else ent_sum
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        skipped = not (math.isfinite(loss_sum) and torch.isfinite(grad_norm))
        if skipped:
            optimizer.zero_grad(set_to_none=True)
            if undo is not None and epoch > 0:
                load_trainable_state(model, undo[0], "the state before this step")
                optimizer.load_state_dict(undo[1])
            break
        optimizer.step()
    return {"loss": loss_sum, "kl_sum": kl_sum, "clipped": clipped, "ent_sum": ent_sum,
            "grad_norm": float(grad_norm), "skipped": skipped}


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
            f"mem {m['peak_mem_gb']:.2f}G"
            + "".join(f" | {k} {m[k]:.2f}" for k in ("judge/unparseable", "canary/agreement", "canary/recall_violated")
                      if k in m)
            + (" | SKIPPED (non-finite)" if m["skipped"] else ""))


def prepare_run_dir(cfg):
    """A new run needs an empty (or missing) folder, so a new run never overwrites an old one's files; a resumed
    one needs a checkpoint. Creates nothing: the folder is made once the model has loaded (start_run), so a run
    that fails at start leaves no empty folder behind."""
    run_dir = cfg.out_dir
    if os.path.isdir(run_dir) and os.listdir(run_dir) and not cfg.resume:
        raise TrainError(f"run folder {run_dir!r} is not empty: pass --resume=true to continue it, or choose "
                         f"another --out_dir")
    ckpts = sorted(glob.glob(os.path.join(run_dir, "checkpoints", "step-*")))
    if cfg.resume and not ckpts:
        what = "has metrics and no checkpoint" if os.path.exists(os.path.join(run_dir, "metrics.jsonl")) else \
            "holds no checkpoint"
        raise TrainError(f"--resume=true but {run_dir!r} {what} to resume from: drop --resume to start a new run")
    return run_dir, (ckpts[-1] if cfg.resume and ckpts else None)


# ---------------------------------------------------------------------------------------------- the phases


@dataclass
class Run:
    """What the loop carries from step to step; built once by `start_run`."""
    cfg: TrainConfig
    run_dir: str
    records: list
    model: object
    tokenizer: object
    ref_model: object  # full fine-tuning: a frozen copy as the reference; LoRA: None (the adapter is switched off)
    reward_fn: object
    params: list
    optimizer: object
    scheduler: object
    generator: torch.Generator
    device: torch.device
    eos_ids: list
    pad_id: int
    temperature: float  # the log-prob passes' temperature (1 when sampling is greedy)
    metrics_path: str
    rollouts_path: str
    on_step: object = None
    start: int = 0
    history: list = field(default_factory=list)
    saved: list = field(default_factory=list)
    bad_steps: int = 0
    reporter: object = None  # --report_to's TensorBoard / wandb writer (engine/report_to.py), or None


def start_run(cfg, reward_fn, on_step, records, model, tokenizer):
    """Folder, records, seeds, model (+ LoRA), reward, optimizer; a checkpoint's state when resuming."""
    records = load_records(cfg, records, check_constraints=reward_fn is None)
    run_dir, resume_from = prepare_run_dir(cfg)
    if cfg.threads:  # 0: the caller's setting stands (a pipeline sets its own for all its runs)
        cpu_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if model is None:
        model, tokenizer = load_model(cfg)
    else:
        if tokenizer is None or cfg.load_in_4bit:
            raise ConfigError("train(model=...) needs tokenizer=... and load_in_4bit=false")
        model = prepare(model.to(pick_device(cfg.device)), cfg)
    os.makedirs(run_dir, exist_ok=True)
    device = next(model.parameters()).device
    if device.type == "cpu" and cfg.cpu_mmap_threshold_kb:
        # a step frees hundreds of MB of activations; glibc's heap would keep them resident (engine/malloc.py)
        return_freed_memory(cfg.cpu_mmap_threshold_kb * 1024)
    reward_fn = reward_fn or reward_from_config(cfg, model, tokenizer)
    ref_model = None
    if not hasattr(model, "disable_adapter") and cfg.beta > 0:  # full fine-tuning: a frozen copy is the reference
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / (cfg.warmup_steps + 1)))
    run = Run(cfg, run_dir, records, model, tokenizer, ref_model, reward_fn, params, optimizer, scheduler,
              torch.Generator(device=device).manual_seed(cfg.seed), device, eos_token_ids(model, tokenizer),
              pad_token_id(tokenizer), cfg.temperature if cfg.temperature > 0 else 1.0,
              os.path.join(run_dir, "metrics.jsonl"), os.path.join(run_dir, "rollouts.jsonl"), on_step)
    if resume_from:
        run.start = load_checkpoint(resume_from, model, optimizer, scheduler, run.generator)
        run.history = truncate_log(run.metrics_path, run.start)  # steps logged after the checkpoint are re-run
        truncate_log(run.rollouts_path, run.start)
        write_atomic(os.path.join(run_dir, f"config.resume-{run.start}.json"), to_json(to_dict(cfg), indent=2))
        print(f"resumed from {resume_from} at step {run.start}")
    else:
        write_atomic(os.path.join(run_dir, "config.json"), to_json(to_dict(cfg), indent=2))
    run.reporter = open_reporter(cfg, run_dir, resumed_at=run.start)
    defaults = to_dict(TrainConfig())
    print("config (non-default keys):", json.dumps({k: v for k, v in to_dict(cfg).items() if v != defaults[k]}))
    print(f"run {run_dir}: device {device}, {torch.get_num_threads()} torch threads, "
          f"{sum(p.numel() for p in params):,} trainable parameters, B={cfg.prompts_per_step} G={cfg.group_size}")
    return run


def sample(run, step):
    """The step's B records, G completions each (prompt-major: row n answers batch[n // G]), and their texts."""
    cfg, tok = run.cfg, run.tokenizer
    batch = step_records(run.records, step, cfg.prompts_per_step, cfg.seed)
    ro = generate(run.model, [encode_prompt(r, tok, cfg.chat_template) for r in batch], cfg.group_size,
                  cfg.max_new_tokens, run.eos_ids, run.pad_id, cfg.temperature, cfg.top_p, cfg.top_k, run.generator,
                  cfg.stop_strings, tok, path=cfg.sampler)
    texts = [tok.decode(t[m.bool()], skip_special_tokens=True) for t, m in zip(ro.tokens, ro.mask)]
    return [r for r in batch for _ in range(cfg.group_size)], ro, texts


def score(run, rollout_records, ro, texts):
    """Rewards (N,), their named parts, group advantages (N,) and the batch the log-prob passes read."""
    cfg, G = run.cfg, run.cfg.group_size
    rewards, parts = call_reward(run.reward_fn, rollout_records, texts)  # (N,)
    adv = group_advantages(rewards, G, cfg.scale_rewards).to(run.device)  # (N,)
    # DAPO's overlong filtering: a sample cut at max_new_tokens is not trained on (its reward still counts in its
    # group's mean and std)
    mask = ro.mask * ro.stopped[:, None] if cfg.mask_truncated else ro.mask  # (N, L)
    b = StepBatch(ro.prompt_ids, ro.prompt_mask, ro.tokens, mask,
                  [slice(i, i + cfg.micro_batch_size) for i in range(0, len(texts), cfg.micro_batch_size)], G)
    return rewards, parts, adv, b


def reference_logp(run, b):
    """(N, L) log-probs of the reference: the adapter switched off (or the frozen copy), eval mode, no grad."""
    ref_logp = None
    if run.cfg.beta > 0:
        run.model.eval()
        with reference_mode(run.model, run.ref_model):
            ref_logp = logp_no_grad(run.ref_model or run.model, b, run.temperature)  # (N, L)
    run.model.train()
    return ref_logp


def update_policy(run, b, adv, ref_logp):
    """epochs_per_step optimizer steps over micro-batches; the schedule advances only on an applied update."""
    st = policy_epochs(run.model, run.optimizer, run.params, b, adv, ref_logp, run.temperature, run.cfg)
    if not st["skipped"]:
        run.scheduler.step()
    return st


def evaluate_hook(run, step, record):
    """on_step(step, model, tokenizer), its random streams isolated from training's; its dict joins `record`."""
    if run.on_step is not None:
        was_training = run.model.training
        with isolated_rng():
            extra = run.on_step(step, run.model, run.tokenizer) or {}
        run.model.train(was_training)
        record.update(extra)


def record(run, m):
    """One metrics row: metrics.jsonl, the run's history, and --report_to's TensorBoard or wandb."""
    append_jsonl(run.metrics_path, m)
    run.history.append(m)
    if run.reporter is not None:
        run.reporter.log(m)


def log_step(run, step, rollout_records, texts, ro, b, rewards, parts, st, lr_used, times):
    """One metrics row (metrics.jsonl, the console), a few raw rollouts every rollouts_every steps, the on_step
    evaluation when due, a checkpoint when due; stops the run after max_bad_steps non-finite steps in a row."""
    cfg, G = run.cfg, run.cfg.group_size
    t0, t_sample, t_train = times
    n_tok = b.mask.sum().item()
    zero_var = (rewards.view(-1, G).std(1, unbiased=False) == 0).float().mean().item()
    m = {"step": step, "reward": rewards.mean().item(), "reward_std": rewards.std(unbiased=False).item(),
         **{f"reward/{k}": nanmean(v) for k, v in parts.items()}, "zero_var": zero_var,
         "kl": st["kl_sum"] / max(n_tok, 1), "entropy": st["ent_sum"] / max(n_tok, 1),
         "clip_frac": st["clipped"] / max(n_tok, 1), "loss": st["loss"], "grad_norm": st["grad_norm"],
         "len": ro.mask.sum(1).float().mean().item(), "no_eos": 1.0 - ro.stopped.float().mean().item(),
         "sample_tok_s": ro.mask.sum().item() / t_sample, "train_tok_s": n_tok * cfg.epochs_per_step / t_train,
         "tokens": int(n_tok), "peak_mem_gb": peak_memory_gb(run.device), "lr": lr_used, "skipped": st["skipped"],
         "time_s": time.perf_counter() - t0,
         **(getattr(run.reward_fn, "last_metrics", None) or {})}  # a reward's own per-step scalars (judge canaries)
    run.bad_steps = run.bad_steps + 1 if st["skipped"] else 0
    if cfg.rollouts_every and step % cfg.rollouts_every == 0:
        for n in range(0, len(texts), max(1, len(texts) // cfg.rollouts_shown))[:cfg.rollouts_shown]:
            row = {"step": step, "prompt": prompt_text(rollout_records[n]), "completion": texts[n],
                   "reward": rewards[n].item(), "parts": {k: v[n] for k, v in parts.items()}}
            append_jsonl(run.rollouts_path, row)
            tqdm.write(f"  rollout {n} reward {row['reward']:.2f} {row['parts']}: {texts[n][:200]!r}")
    if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps:
        evaluate_hook(run, step, m)
    record(run, m)
    if cfg.log_every and (step % cfg.log_every == 0 or st["skipped"]):
        tqdm.write(console_line(m))
    if run.bad_steps >= cfg.max_bad_steps:
        raise TrainError(f"stopping at step {step}: {run.bad_steps} steps in a row had a non-finite loss or "
                         f"gradient (last loss {st['loss']}); lower --lr or check the reward function. "
                         f"Checkpoints and metrics written so far are in {run.run_dir}")
    if (cfg.ckpt_every and step % cfg.ckpt_every == 0) or step == cfg.steps:
        run.saved.append(save_checkpoint(run.run_dir, step, run.model, run.tokenizer, run.optimizer, run.scheduler,
                                         run.generator, cfg.keep_ckpts, data_pos=step * cfg.prompts_per_step))
    return m


# ---------------------------------------------------------------------------------------------- the loop


def train(cfg, reward_fn=None, on_step=None, records=None, model=None, tokenizer=None):
    """Run GRPO as configured. reward_fn(records, completions) -> (rewards, parts), default: built from the config
    (`reward_from_config`, the verifiers for --reward=hard); on_step(step, model, tokenizer) -> dict | None at
    step 0, every cfg.eval_every steps and at the end, with the training's random streams isolated from it.
    `records` replaces cfg.data; a plain HF `model` + `tokenizer` (e.g. tiny_model) replace cfg.model and get
    cfg's LoRA / checkpointing setup here (4-bit needs a folder: quantization happens while loading)."""
    run = start_run(cfg, reward_fn, on_step, records, model, tokenizer)
    try:
        if run.start == 0 and on_step is not None:
            rec = {"step": 0}
            evaluate_hook(run, 0, rec)
            record(run, rec)

        bar = tqdm(range(run.start + 1, cfg.steps + 1), initial=run.start, total=cfg.steps, disable=not cfg.progress,
                   desc="grpo", file=sys.stderr)
        for step in bar:
            t0 = time.perf_counter()
            rollout_records, ro, texts = sample(run, step)  # N = B*G completions
            t_sample = time.perf_counter() - t0
            rewards, parts, adv, b = score(run, rollout_records, ro, texts)  # verifiers / judge -> group advantages
            t1 = time.perf_counter()
            ref_logp = reference_logp(run, b)  # adapter off, no grad
            lr_used = run.optimizer.param_groups[0]["lr"]
            st = update_policy(run, b, adv, ref_logp)  # clipped PG + k3 KL, AdamW on the LoRA parameters
            t_train = time.perf_counter() - t1
            m = log_step(run, step, rollout_records, texts, ro, b, rewards, parts, st, lr_used, (t0, t_sample, t_train))
            bar.set_postfix(reward=f"{m['reward']:.3f}", kl=f"{m['kl']:.4f}")
        bar.close()
    finally:
        if run.reporter is not None:  # also when a step fails: what was logged reaches TensorBoard / wandb
            run.reporter.close()

    final = write_policy(run.run_dir, run.model, run.tokenizer)
    if hasattr(run.model, "peft_config"):
        print(f"trained policy: {final} (peft adapter + tokenizer; e.g. python run.py eval --model "
              f"{cfg.model or 'BASE'} --adapter {final})")
    else:
        print(f"trained policy: {final} (model folder + tokenizer)")
    return TrainResult(run_dir=run.run_dir, history=run.history, model=run.model, tokenizer=run.tokenizer,
                       config=cfg, checkpoints=run.saved, policy_dir=final)
