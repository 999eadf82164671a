"""Supervised start for the CPU experiment: a ~1M-parameter Qwen2 model trained from scratch on the world.

    path = build_or_load(SFTConfig(), cache_dir="runs/cache")   # a folder AutoModelForCausalLM can load

The corpus is world.sample_records("sft") answered by the world's grammar (each constraint followed about
half the time), so the model satisfies constraints only part of the time: that is what gives GRPO a signal.
The loss is on the response tokens and EOS only. The result (model + tokenizer + meta.json) is cached under
a key that hashes the config and the corpus text itself, so any change to the world, the verifiers' English
or the config builds a new model instead of reusing an incompatible one.
This file does not sample or evaluate (the miniature's parts do, with the kit's own sampler).
"""

import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from minirlvr.data import nan_for_null, to_json, write_atomic
from minirlvr.miniature import world
from minirlvr.engine.tokenizer import chat_prompt, train_tokenizer

FORMAT = 1  # bump when the saved layout changes


@dataclass(frozen=True)
class SFTConfig:
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 30
    p_follow: float = 0.5  # how often the grammar follows each constraint
    vocab_size: int = 1024
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 384
    max_positions: int = 256
    seed: int = 0


def corpus(cfg):
    """(records, responses): one world record and one grammar response per training sequence."""
    records = world.sample_records("sft", cfg.steps * cfg.batch_size, seed=cfg.seed)
    rng = random.Random(cfg.seed)
    return records, [world.write_response(r, rng, p_follow=cfg.p_follow) for r in records]


def cache_key(cfg, records, responses):
    h = hashlib.sha256(json.dumps({"format": FORMAT, "cfg": dataclasses.asdict(cfg)}, sort_keys=True).encode())
    for r, text in zip(records, responses):
        h.update(r["prompt"].encode())
        h.update(text.encode())
    return h.hexdigest()


def is_cached(path, key):
    """A cache folder is usable only if it is complete and was built for exactly this key."""
    try:
        with open(os.path.join(path, "meta.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    return meta.get("key") == key and os.path.exists(os.path.join(path, "config.json"))


def make_model(cfg, tokenizer):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    # untied LM head: the engine reads it as a plain (V, D) weight, and bitsandbytes leaves it unquantized
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=cfg.hidden, intermediate_size=cfg.intermediate,
                         num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
                         num_key_value_heads=cfg.kv_heads, max_position_embeddings=cfg.max_positions,
                         tie_word_embeddings=False, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    torch.manual_seed(cfg.seed)
    return Qwen2ForCausalLM(config)


def encode(tokenizer, records, responses, max_len):
    """Token ids and labels (-100 on the prompt) per example; tokenized in batches (one by one is slow)."""
    prompts = tokenizer([chat_prompt(tokenizer, r["prompt"]) for r in records], add_special_tokens=False)
    answers = tokenizer(responses, add_special_tokens=False)
    examples = []
    for p, a in zip(prompts["input_ids"], answers["input_ids"]):
        ids = (p + a + [tokenizer.eos_token_id])[:max_len]
        examples.append((ids, ([-100] * len(p) + a + [tokenizer.eos_token_id])[:max_len]))
    return examples


def collate(batch, pad_id):
    T = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), T), pad_id)  # (B, T)
    labels = torch.full((len(batch), T), -100)  # (B, T)
    mask = torch.zeros((len(batch), T), dtype=torch.long)  # (B, T)
    for i, (ids, lab) in enumerate(batch):
        input_ids[i, :len(ids)] = torch.tensor(ids)
        labels[i, :len(lab)] = torch.tensor(lab)
        mask[i, :len(ids)] = 1
    return input_ids, labels, mask


def train_sft(cfg, out_dir, records, responses, progress=True, name="SFT"):
    """Train tokenizer and model on (record prompt -> response) pairs, save both to out_dir. Returns a dict of
    measured numbers. The miniature's LM judge (lm_judge.py) is trained by this same loop on judge questions."""
    t0 = time.time()
    tokenizer = train_tokenizer([r["prompt"] for r in records] + responses, vocab_size=cfg.vocab_size)
    examples = encode(tokenizer, records, responses, cfg.max_positions)
    model = make_model(cfg, tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.95))
    rng = random.Random(cfg.seed)
    rng.shuffle(examples)
    tokens, losses = 0, []
    bar = tqdm(range(cfg.steps), desc=f"{name} {n_params / 1e6:.2f}M params", disable=not progress, leave=False)
    model.train()
    for step in bar:
        # linear warmup, cosine decay to 10%
        frac = step / max(1, cfg.steps - 1)
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        batch = examples[step * cfg.batch_size:(step + 1) * cfg.batch_size]
        input_ids, labels, mask = collate(batch, tokenizer.pad_token_id)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        tokens += int(mask.sum())
        losses.append(loss.item())
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}",
                        tok_s=f"{tokens / (time.time() - t0):.0f}")
    model.eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    wall = time.time() - t0
    return {"params": n_params, "final_loss": sum(losses[-20:]) / len(losses[-20:]), "tokens": tokens,
            "wall_s": round(wall, 1), "tokens_per_s": round(tokens / wall)}


def cache_path(cfg, cache_dir, key_corpus, name="SFT"):
    """(folder, key) of the cached model for cfg whose key hashes key_corpus = (records, responses)."""
    key = cache_key(cfg, *key_corpus)
    return os.path.join(cache_dir, f"{name.lower()}-{key[:16]}"), key


def build_or_load(cfg, cache_dir, progress=True, log=print, make_corpus=corpus, name="SFT", fingerprint=None):
    """Path of a cached model for cfg, training (and caching) it first if needed. `make_corpus(cfg)` gives the
    (records, responses) it is trained on: the world's SFT corpus by default, the judge's questions for the LM
    judge (`name` "judge", folder judge-<key>). The cache key hashes `fingerprint(cfg)` (default: the whole
    corpus), so that a corpus that is slow to write is written only to train."""
    key_corpus = make_corpus(cfg) if fingerprint is None else fingerprint(cfg)
    path, key = cache_path(cfg, cache_dir, key_corpus, name)
    if is_cached(path, key):
        log(f"{name} model: cached at {path}")
        return path
    if os.path.exists(path):
        log(f"{name} model: {path} is incomplete or was built for another world/config: rebuilding it")
        shutil.rmtree(path)
    log(f"{name} model: training from scratch ({cfg.steps} steps x {cfg.batch_size} sequences) -> {path}")
    records, responses = key_corpus if fingerprint is None else make_corpus(cfg)
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    stats = train_sft(cfg, tmp, records, responses, progress=progress, name=name)
    meta = {"key": key, "format": FORMAT, "config": dataclasses.asdict(cfg), **stats}
    write_atomic(os.path.join(tmp, "meta.json"), to_json(meta, indent=1))
    os.replace(tmp, path)  # the folder appears complete or not at all
    log(f"{name} model: {stats['params'] / 1e6:.2f}M params, final loss {stats['final_loss']:.3f}, "
        f"{stats['tokens_per_s']} tokens/s, {stats['wall_s']:.0f}s")
    return path


def load_meta(path):
    with open(os.path.join(path, "meta.json")) as f:
        return nan_for_null(json.load(f))
