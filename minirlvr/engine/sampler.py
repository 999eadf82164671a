"""The kit's own generation loop: B prompts x G samples over the model's forward pass with a KV cache.

Small verbs in the gpt-fast manner: `prefill` runs each prompt once (its cache is then repeated G times instead of
recomputing the same prompt G times); `decode_one_token` advances the rows still decoding by one token;
`sample_token` applies temperature / top-k / top-p with a seeded torch.Generator; `generate` loops until every row
has stopped (EOS, a stop string, or max_new_tokens). Two decoders: the fast path (`StaticDecoder`, the default)
preallocates the KV cache for all N rows and every slot they will use (transformers' StaticCache) and, on CUDA,
runs a decode step compiled once per shape (torch.compile with CUDA graphs); the eager path (`EagerDecoder`) grows a
DynamicCache by one torch.cat per step: the reference, and what a failed compilation falls back to.
Rows that stopped cost nothing more: only live rows are sampled, and they leave the decode batch (their cache rows
are dropped) once a quarter of it has stopped (compiled: three quarters, to power-of-two row counts). Sampling
draws one uniform number per live row (inverse CDF), so the seeded stream depends on which rows are live, never on
the decoder or the compaction: every path samples the same tokens from the same logits.

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
import warnings
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
    return cache_arg(type(inner)) or "past_key_values"


@functools.lru_cache(maxsize=None)
def cache_arg(cls):
    """The name under which a model or decoder body class takes a KV cache ("cache" or "past_key_values"), or
    None for one that takes none (engine/model.py's shared prefix then runs full sequences)."""
    params = inspect.signature(cls.forward).parameters
    return next((name for name in ("cache", "past_key_values") if name in params), None)


def prefill(model, ids, mask, pos, cache):
    """Run the prompts once, filling the cache; logits of the last position (B, V) fp32."""
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1,
                **{cache_kwarg(model): cache})
    return out.logits[:, -1].float()


def decode_one_token(model, token, mask, pos, cache, kwarg=None):
    """One step for the n rows in the cache: token (n, 1), mask (n, T) over everything cached plus this token,
    pos (n, 1). kwarg: cache_kwarg(model), looked up outside a compiled step."""
    out = model(input_ids=token, attention_mask=mask, position_ids=pos, use_cache=True,
                **{kwarg or cache_kwarg(model): cache})
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
    # inverse-CDF sampling: one uniform number per row (torch.multinomial draws V of them per row, which on a CPU
    # is most of a small model's step); fp64 sums: a sequential fp32 sum over 150k tokens would drift
    cdf = filtered.exp().double().cumsum_(-1)  # (N, V); in place: cumsum(dtype=) would hold a second fp64 copy
    total = cdf[:, -1:]  # (N, 1)
    u = torch.rand(total.shape, generator=generator, dtype=torch.float64, device=total.device)  # (N, 1)
    # strictly below the total, so that the token found has probability > 0 (the first with cdf > u * total)
    v = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total)))
    token = torch.searchsorted(cdf, v, right=True).squeeze(-1)  # (N,)
    return token, logprobs.gather(-1, token[:, None]).squeeze(-1)


class EagerDecoder:
    """The reference decode: transformers' DynamicCache, which grows by one torch.cat per layer and step; the
    attention mask grows with it."""

    def __init__(self, model, cache, prompt_mask):
        self.model, self.cache, self.attn = model, cache, prompt_mask  # attn (n, P + t)

    def step(self, token, pos):
        """token (n, 1), pos (n, 1) -> logits (n, V)."""
        self.attn = torch.cat([self.attn, torch.ones_like(self.attn[:, :1])], 1)  # (n, P+t+1)
        return decode_one_token(self.model, token, self.attn, pos, self.cache)

    def keep(self, idx):
        self.cache.batch_select_indices(idx)
        self.attn = self.attn[idx]


def compile_step(fn, device):
    """torch.compile of the decode step; CUDA graphs on a GPU ("reduce-overhead": one kernel launch per step
    instead of hundreds). A function of its own so that the tests can count compilations with another backend."""
    return torch.compile(fn, mode="reduce-overhead" if device.type == "cuda" else None, dynamic=False)


_compiled = {}  # device type -> the compiled decode step (one per process: dynamo caches its graphs per shape)
SLOT_ROUND = 128  # a compiled path's cache slots are a multiple of this (pipeline/plan.py counts them so)


class StaticDecoder:
    """The fast path, in the gpt-fast manner: a KV cache preallocated for all N rows and every slot they will use
    (transformers' StaticCache), written in place one slot per step; the attention mask covers every slot (those
    not written yet are masked), so every step has the same shapes and a compiled step is reused. The prompt's
    cache is copied in once, repeated G times, from the prefill's DynamicCache. Compaction replaces each layer's
    tensors by the kept rows (one layer at a time: the copy costs one layer's cache, not a second cache)."""

    def __init__(self, model, prefill_cache, prompt_mask, G, slots, compiled):
        from transformers import StaticCache

        src = prefill_cache.layers
        B, H, P, D = src[0].keys.shape
        self.cache = StaticCache(config=model.config, max_cache_len=slots)
        self.cache.early_initialization(B * G, H, D, src[0].keys.dtype, src[0].keys.device)
        for layer, s in zip(self.cache.layers, src):
            layer.keys[:, :, :P] = s.keys.repeat_interleave(G, 0)
            layer.values[:, :, :P] = s.values.repeat_interleave(G, 0)
            layer.cumulative_length.fill_(P)
        self.attn = torch.zeros((B * G, slots), dtype=prompt_mask.dtype, device=prompt_mask.device)  # (n, S)
        self.attn[:, :P] = prompt_mask.repeat_interleave(G, 0)
        self.slot, self.model, self.kwarg = P, model, cache_kwarg(model)
        self.fn = decode_one_token
        if compiled:
            device = prompt_mask.device
            if device.type not in _compiled:
                # every (rows, slots) shape is a graph of its own: room for a run's worth of them (the default, 8,
                # would silently leave later shapes uncompiled)
                torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
                _compiled[device.type] = compile_step(decode_one_token, device)
            self.fn = _compiled[device.type]

    def step(self, token, pos):
        self.attn[:, self.slot] = 1
        self.slot += 1
        if self.fn is decode_one_token:
            return decode_one_token(self.model, token, self.attn, pos, self.cache, self.kwarg)
        if token.is_cuda:
            torch.compiler.cudagraph_mark_step_begin()  # the previous step's outputs were consumed
        try:
            return self.fn(self.model, token, self.attn, pos, self.cache, self.kwarg)
        except Exception as e:  # compilation unavailable (no compiler, a model dynamo cannot trace): run eagerly
            warnings.warn(f"generate: the compiled decode step failed ({type(e).__name__}: {e}); "
                          f"decoding without compilation")
            for layer in self.cache.layers:
                layer.cumulative_length.fill_(self.slot - 1)  # in case the failed call counted its slot
            self.fn = decode_one_token
            return decode_one_token(self.model, token, self.attn, pos, self.cache, self.kwarg)

    def keep(self, idx):
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[idx], layer.values[idx]
            layer.batch_size = len(idx)
            torch._dynamo.mark_static_address(layer.keys)  # CUDA graphs read the cache from fixed addresses
            torch._dynamo.mark_static_address(layer.values)
        self.attn = self.attn[idx]


def pick_path(path, device):
    """"auto": compiled on CUDA (CUDA graphs remove the per-op launch cost that dominates a decode step there);
    on a CPU the static cache without compilation: compiling a step takes minutes on a small CPU, and the tiny
    shapes measured no faster compiled (README, sampler benchmark)."""
    if path not in ("auto", "eager", "static", "compiled"):
        raise ValueError(f"generate: path must be auto, eager, static or compiled, got {path!r}")
    if path == "auto":
        return "compiled" if device.type == "cuda" else "static"
    return path


def bucket(n):
    """The number of decode rows a compiled path compacts to: a power of two, so that at most log2(N) shapes
    are compiled."""
    return 1 << max(0, (n - 1).bit_length())


@torch.no_grad()
def generate(model, prompts, group_size=1, max_new_tokens=64, eos_ids=(), pad_id=0, temperature=1.0, top_p=1.0,
             top_k=0, generator=None, stop_strings=(), tokenizer=None, compact=True, path="auto"):
    """Sample `group_size` completions for each of the B token lists in `prompts`. Rows are prompt-major:
    row n belongs to prompt n // group_size. Stop strings need `tokenizer` to decode the tail of each row.
    path: "eager" (DynamicCache: the reference), "static" (preallocated cache), "compiled" (static cache and a
    compiled decode step), "auto" (compiled on CUDA, static elsewhere). compact=False keeps stopped rows in the
    decode batch. Only the live rows are sampled: every path and compaction setting draws the same random numbers."""
    from transformers import DynamicCache

    if stop_strings and tokenizer is None:
        raise ValueError("generate: stop_strings need a tokenizer")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    path = pick_path(path, device)
    G = group_size
    ids, pmask, pos = left_pad(prompts, pad_id, device)  # (B, P)
    cache = DynamicCache()
    logits = prefill(model, ids, pmask, pos, cache)  # (B, V)
    if G > 1:
        logits = logits.repeat_interleave(G, 0)  # (N, V)
    N = logits.shape[0]
    if path == "eager":
        if G > 1:
            cache.batch_repeat_interleave(G)
        decoder = EagerDecoder(model, cache, pmask.repeat_interleave(G, 0))
    else:
        # slots for the prompt and the L - 1 tokens fed back; compiled, rounded up to SLOT_ROUND so that prompts
        # of similar length share a compiled shape
        slots = ids.shape[1] + max_new_tokens - 1
        if path == "compiled":
            slots = -(-slots // SLOT_ROUND) * SLOT_ROUND
        decoder = StaticDecoder(model, cache, pmask, G, slots, path == "compiled")
        del cache  # the prompt's cache now lives in the static one
    next_pos = pos[:, -1:].repeat_interleave(G, 0) + 1  # (n, 1)
    eos = torch.tensor(list(eos_ids), dtype=torch.long, device=device)
    done = torch.zeros(N, dtype=torch.bool, device=device)  # (N,)
    stopped = torch.zeros(N, dtype=torch.bool, device=device)  # (N,)
    tokens, logps, masks = [], [], []
    tail = max((len(s) for s in stop_strings), default=0) + 8  # tokens decoded per row to look for a stop string
    rows = torch.arange(N, device=device)  # (n,) the rows in the decode batch, in cache order; logits (n, V)
    n_active = N
    for t in range(max_new_tokens):
        # Only live rows are sampled: sample_token draws one random number per row it is given, so the stream
        # depends on which rows are live (the same on every path), not on what the decode batch holds
        live = ~done[rows]  # (n,)
        pick, lp = sample_token(logits if n_active == len(rows) else logits[live], temperature, top_p, top_k,
                                generator)
        token = torch.full((N,), pad_id, dtype=torch.long, device=device)  # (N,)
        logp = torch.zeros(N, dtype=torch.float32, device=device)
        token[rows[live]], logp[rows[live]] = pick, lp
        active = ~done
        tokens.append(token)
        logps.append(logp)
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
        # cache (3/4 + 9/16 + ...), and at most a quarter of a step is spent on stopped rows. A compiled step
        # compacts once three quarters stopped, to a power of two padded with stopped rows: each new row count is
        # a compilation (seconds to a minute on a GPU), so few of them (64 rows: 16, 4, 1 at most, typically).
        keep = None
        if compact and path == "compiled" and bucket(n_active) <= len(rows) // 4:
            keep = ~done[rows]
            fill = (~keep).nonzero().squeeze(-1)[:bucket(n_active) - n_active]
            keep[fill] = True
        elif compact and path != "compiled" and n_active <= 0.75 * len(rows):
            keep = ~done[rows]  # (n,) over the decode batch
            padded = decoder.attn[:, 0] == 0 if path == "eager" else None  # (n,) left-padded rows
            if padded is not None and padded.any() and not padded[keep].any():
                # keep one padded row: transformers drops an all-ones mask and then runs SDPA's GQA kernel, which
                # rounds differently from the masked kernel the full batch runs (the static mask always masks
                # the slots not written yet)
                keep[padded.nonzero()[0]] = True
        if keep is not None:
            keep = keep.nonzero().squeeze(-1)  # (n',) positions in the decode batch
            decoder.keep(keep)
            rows, next_pos = rows[keep], next_pos[keep]
        logits = decoder.step(token[rows, None], next_pos)  # (n, V)
        next_pos = next_pos + 1
    model.train(was_training)
    return Rollouts(prompt_ids=ids, prompt_mask=pmask, tokens=torch.stack(tokens, 1),
                    mask=torch.stack(masks, 1).float(), logp=torch.stack(logps, 1), stopped=stopped, group_size=G)
