"""The kit's own generation loop: B prompts x G samples over the model's forward pass with a KV cache.

Small verbs in the gpt-fast manner: `prefill` runs each prompt once; its cache is repeated G times
(`DynamicCache.batch_repeat_interleave`) instead of recomputing the same prompt G times; `decode_one_token`
advances the rows still decoding by one token; `sample_token` applies temperature / top-k / top-p with a seeded
torch.Generator; `generate` loops until every row has stopped (EOS, a stop string, or max_new_tokens).
Rows that stopped leave the decode batch (their cache rows are dropped) once a quarter of it has stopped; sampling
still covers all N rows, which keeps the seeded random stream, and with it the tokens, the same.

Prompts are left padded: the attention mask hides the pads and position ids count only real tokens, so a
padded row computes what it would compute alone. The returned `logp` is log softmax(logits / temperature)
of the chosen token (before top-k/top-p truncation; temperature 1 when greedy): the same quantity training
recomputes with token_logprobs. The completion mask includes the EOS token (stopping is a trained action)
and is never derived from token ids, so the pad id can be anything.
This file does not compute rewards or gradients and does not batch prompts of different requests over time
(no continuous batching).
"""

import functools
import inspect
from dataclasses import dataclass

import torch


@dataclass
class Rollouts:
    prompt_ids: torch.Tensor  # (B, P) left padded
    prompt_mask: torch.Tensor  # (B, P) 1 = real token
    tokens: torch.Tensor  # (N, L) completion tokens, pad_id after a row stopped
    mask: torch.Tensor  # (N, L) float, 1 = generated token (EOS included)
    logp: torch.Tensor  # (N, L) fp32 sampling log-probs, 0 where mask is 0
    stopped: torch.Tensor  # (N,) bool, True if the row ended on EOS or a stop string (not on max_new_tokens)
    group_size: int


def left_pad(prompts, pad_id, device):
    """list of B token lists -> ids (B, P), mask (B, P), position ids (B, P)."""
    P = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), P), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), P), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, P - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[i, P - len(p):] = 1
    return ids.to(device), mask.to(device), positions(mask).to(device)


def positions(mask):
    """Position ids that count only real tokens; pads get 0 (they are masked anyway)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T)


def cache_kwarg(model):
    """transformers >= 5.2x calls the KV cache argument `cache`; older versions `past_key_values`."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return _cache_kwarg(type(inner))


@functools.lru_cache(maxsize=None)
def _cache_kwarg(cls):
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


def prefill(model, ids, mask, pos, cache):
    """Run the prompts once, filling the cache; logits of the last position (B, V) fp32."""
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1,
                **{cache_kwarg(model): cache})
    return out.logits[:, -1].float()


def decode_one_token(model, token, mask, pos, cache):
    """One step for the n rows in the cache: token (n, 1), mask (n, T) over everything cached plus this token,
    pos (n, 1)."""
    out = model(input_ids=token, attention_mask=mask, position_ids=pos, use_cache=True, **{cache_kwarg(model): cache})
    return out.logits[:, -1].float()  # (n, V)


def sample_token(logits, temperature, top_p, top_k, generator):
    """Next token (N,) and its log-prob under softmax(logits / temperature) (N,).

    The token is drawn from the truncated distribution, the returned log-prob is the untruncated one (what the
    loss recomputes; TRL and verl do the same). top-p keeps the tokens whose probability mass ranked above them is
    below p, measured on the full distribution, not renormalized after top-k (Hugging Face applies top-k first and
    then top-p on the renormalized rest, which can keep fewer tokens when both are set)."""
    if temperature == 0:
        token = logits.argmax(-1)  # (N,)
        return token, torch.log_softmax(logits, -1).gather(-1, token[:, None]).squeeze(-1)
    logprobs = torch.log_softmax(logits / temperature, -1)  # (N, V)
    filtered = logprobs
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = filtered.topk(top_k, -1).values[:, -1:]  # (N, 1)
        filtered = filtered.masked_fill(filtered < kth, float("-inf"))
    if top_p < 1.0:
        sorted_lp, order = filtered.sort(-1, descending=True)  # (N, V)
        before = sorted_lp.exp().cumsum(-1) - sorted_lp.exp()  # probability mass ranked above each token
        drop = torch.zeros_like(filtered, dtype=torch.bool).scatter(-1, order, before >= top_p)
        filtered = filtered.masked_fill(drop, float("-inf"))
    token = torch.multinomial(filtered.exp(), 1, generator=generator).squeeze(-1)  # (N,)
    return token, logprobs.gather(-1, token[:, None]).squeeze(-1)


@torch.no_grad()
def generate(model, prompts, group_size=1, max_new_tokens=64, eos_ids=(), pad_id=0, temperature=1.0, top_p=1.0,
             top_k=0, generator=None, stop_strings=(), tokenizer=None, compact=True):
    """Sample `group_size` completions for each of the B token lists in `prompts`. Rows are prompt-major:
    row n belongs to prompt n // group_size. Stop strings need `tokenizer` to decode the tail of each row.
    compact=False keeps stopped rows in the decode batch (the reference the tests and the benchmark compare to)."""
    from transformers import DynamicCache

    if stop_strings and tokenizer is None:
        raise ValueError("generate: stop_strings need a tokenizer")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    G = group_size
    ids, pmask, pos = left_pad(prompts, pad_id, device)  # (B, P)
    cache = DynamicCache()
    logits = prefill(model, ids, pmask, pos, cache)  # (B, V)
    if G > 1:
        cache.batch_repeat_interleave(G)
        logits = logits.repeat_interleave(G, 0)  # (N, V)
    N = logits.shape[0]
    attn = pmask.repeat_interleave(G, 0)  # (N, P)
    next_pos = pos[:, -1:].repeat_interleave(G, 0) + 1  # (N, 1)
    eos = torch.tensor(list(eos_ids), dtype=torch.long, device=device)
    done = torch.zeros(N, dtype=torch.bool, device=device)  # (N,)
    stopped = torch.zeros(N, dtype=torch.bool, device=device)  # (N,)
    tokens, logps, masks = [], [], []
    tail = max((len(s) for s in stop_strings), default=0) + 8  # tokens decoded per row to look for a stop string
    rows = torch.arange(N, device=device)  # (n,) the rows in the decode batch, in cache order
    for t in range(max_new_tokens):
        token, lp = sample_token(logits, temperature, top_p, top_k, generator)  # (N,), (N,)
        active = ~done
        token = torch.where(active, token, torch.full_like(token, pad_id))
        tokens.append(token)
        logps.append(torch.where(active, lp, torch.zeros_like(lp)))
        masks.append(active)
        hit = active & torch.isin(token, eos)
        if stop_strings:
            row_tokens = torch.stack(tokens, 1)  # (N, t+1)
            for n in active.nonzero().flatten().tolist():
                text = tokenizer.decode(row_tokens[n, -tail:])
                if any(s in text for s in stop_strings):
                    hit[n] = True
        stopped |= hit
        done |= hit
        n_active = int((~done).sum())  # a host sync, like any test for the end
        if n_active == 0 or t == max_new_tokens - 1:
            break
        # Compaction: drop stopped rows from the cache, mask and positions. The copy of the kept cache rows costs
        # about two steps of attention over them, so it waits until a quarter of the batch stopped: it then pays
        # back within ~6 steps even where attention is all of a row's cost, all copies together stay under 3x the
        # cache (3/4 + 9/16 + ...), and at most a quarter of a step is spent on stopped rows.
        if compact and n_active <= 0.75 * len(rows):
            keep = ~done[rows]  # (n,) over the decode batch
            padded = attn[:, 0] == 0  # (n,) left-padded rows
            if padded.any() and not padded[keep].any():
                # keep one padded row: transformers drops an all-ones mask and then runs SDPA's GQA kernel, which
                # rounds differently from the masked kernel the full batch runs
                keep[padded.nonzero()[0]] = True
            keep = keep.nonzero().squeeze(-1)  # (n',) positions in the decode batch
            cache.batch_select_indices(keep)
            rows, attn, next_pos = rows[keep], attn[keep], next_pos[keep]
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], 1)  # (n, P+t+1)
        # Sampling still sees all N rows (stopped rows keep their last, finite logits; their token is discarded):
        # torch.multinomial draws random numbers for every row, so N rows keep the seeded stream unchanged.
        if len(rows) == N:  # nothing compacted yet: no gather, no scatter
            logits = decode_one_token(model, token[:, None], attn, next_pos, cache)  # (N, V)
        else:
            logits[rows] = decode_one_token(model, token[rows, None], attn, next_pos, cache)  # (n, V) into (N, V)
        next_pos = next_pos + 1
    model.train(was_training)
    return Rollouts(prompt_ids=ids, prompt_mask=pmask, tokens=torch.stack(tokens, 1),
                    mask=torch.stack(masks, 1).float(), logp=torch.stack(logps, 1), stopped=stopped, group_size=G)
