"""Text in, text out through the kit's own sampler: the one path by which evaluation, the LLM judge, the critic and
the refinement pilot ask a model something.

    model, tok = load_for_inference("Qwen/Qwen2.5-0.5B-Instruct", adapter="runs/grpo/adapter")
    out = complete(model, tok, [{"prompt": "Say hi in lowercase."}], samples=1, max_new_tokens=64)
    out.texts[0]

Prompts are records (`prompt` or `messages`), lists of chat messages, or plain strings; each goes through the
tokenizer's chat template when it has one (`encode_prompt`, the same encoding training uses). Prompts are sorted
by length and batched so that `batch_rows` rows (prompts x samples) decode together; results come back in the
input order, prompt-major (row i belongs to prompt i // samples). `adapter_off=True` answers as the base model
(LoRA switched off, no second copy of the weights): how the LLM judge and critic run on the policy's own base.
This file does not score, judge or train.
"""

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from minirlvr.data import DataError, prompt_text
from minirlvr.engine.progress import Progress
from minirlvr.engine.sampler import generate


def as_record(prompt):
    """A record dict from a record, a list of chat messages or a plain string."""
    if isinstance(prompt, dict):
        return prompt
    if isinstance(prompt, str):
        return {"prompt": prompt}
    if isinstance(prompt, list):
        return {"messages": prompt}
    raise TypeError(f"a prompt must be a record dict, a list of messages or a string, got {type(prompt).__name__}")


def record_messages(record):
    """The chat a template turns into a prompt: the record's `messages`, else its `prompt` as one user message."""
    return record.get("messages") or [{"role": "user", "content": record["prompt"]}]


def encode_prompt(record, tokenizer, use_template=True):
    """Token ids of a record's prompt, through the chat template when asked and available."""
    if use_template and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(record_messages(record), add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False).input_ids
    else:
        ids = tokenizer(prompt_text(record)).input_ids
    if not ids:
        raise DataError(f"record {record.get('key', '?')}: the prompt encodes to zero tokens")
    return ids


def eos_token_ids(model, tokenizer):
    """Every id that ends a turn: the tokenizer's EOS and the generation config's (an int or a list; id 0 counts)."""
    ids = {tokenizer.eos_token_id}
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if gen_eos is not None:
        ids |= set(np.atleast_1d(gen_eos).tolist())
    return sorted(int(i) for i in ids if i is not None)


def pad_token_id(tokenizer):
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


@dataclass
class Completions:
    texts: list  # (len(prompts) * samples) strings, prompt-major
    stopped: list  # bool per row: ended on EOS (False: cut at max_new_tokens)
    lengths: list  # completion tokens per row (EOS included)


def complete(model, tokenizer, prompts, samples=1, max_new_tokens=256, temperature=0.0, top_p=1.0, top_k=0, seed=0,
             batch_rows=64, chat_template=True, adapter_off=False, progress=False, desc="generate",
             sort_by_length=True, path="auto"):
    """`samples` completions of each prompt with the kit's sampler (greedy when temperature == 0).
    sort_by_length=False batches the prompts in their input order (what a fixed sampling stream needs).
    path: the sampler's decode path (sampler.generate)."""
    records = [as_record(p) for p in prompts]
    encoded = [encode_prompt(r, tokenizer, chat_template) for r in records]
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    eos, pad = eos_token_ids(model, tokenizer), pad_token_id(tokenizer)
    order = list(range(len(encoded)))
    if sort_by_length:
        order.sort(key=lambda i: -len(encoded[i]))  # similar lengths pad less
    per_batch = max(1, batch_rows // samples)
    texts, stopped, lengths = [None] * len(encoded) * samples, [None] * len(encoded) * samples, [0] * len(encoded) * samples
    off = model.disable_adapter() if adapter_off and hasattr(model, "disable_adapter") else contextlib.nullcontext()
    bar = Progress(len(encoded), desc=desc, unit="prompt", enabled=progress, leave=False)
    with off:
        for start in range(0, len(order), per_batch):
            idx = order[start:start + per_batch]
            ro = generate(model, [encoded[i] for i in idx], samples, max_new_tokens, eos, pad, temperature, top_p,
                          top_k, generator, path=path)
            for row, (tok, m) in enumerate(zip(ro.tokens, ro.mask)):
                out = idx[row // samples] * samples + row % samples
                texts[out] = tokenizer.decode(tok[m.bool()], skip_special_tokens=True)
                stopped[out] = bool(ro.stopped[row])
                lengths[out] = int(m.sum())
            bar.update(len(idx), int(ro.mask.sum()))
    bar.close()
    return Completions(texts=texts, stopped=stopped, lengths=lengths)
