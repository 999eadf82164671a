"""`python run.py plan --preset NAME [--gpu-gb 12|16|24]`: the GPU memory a preset's run needs, by arithmetic.

From the model's config.json alone (no download, no weights, no GPU) it estimates the bytes of each thing one GRPO
step holds (`estimate`), the step's peak, the evaluation stage's and the attention stage's, whether they fit a card,
and the largest group size G and completion length L that fit (`largest_fit`). The formulas follow what this kit's
code allocates: train.py's step (sampler.py's prefill + decode with a KV cache, a no-grad reference pass with the
adapter off, policy passes per micro-batch with activation checkpointing, kernels/logprobs.py on the trained
positions only, AdamW on the LoRA parameters) and model.py's loading (NF4 + double quantization via bitsandbytes,
embeddings and LM head unquantized, bf16 compute on a GPU, fp32 on a CPU, fp32 LoRA adapters via peft on every
linear layer but the head). They take the worst case: every row runs to L, prompts are padded (so attention has a
mask).

Every GPU number is an ESTIMATE until a GPU run measures it (train logs `peak_mem_gb` each step). The CPU mode
(fp32, no CUDA allowance) is checked against measured training steps in tests/test_plan.py. Card sizes are GiB
(2**30 bytes, as nvidia-smi counts them: a "24 GB" card has 24 GiB).

What it deliberately does not do: no judge or critic phase (the judge "base" samples the policy with its adapter
off, with prompts and batch sizes this file does not know), no full fine-tuning, no multi-GPU or CPU offload, no
measuring (train's log does that).
"""

import functools
import math
import os
from importlib import resources
from dataclasses import dataclass, replace

from minirlvr.data import read_json_object
from minirlvr.pipeline import presets


GiB = 2 ** 30
CONFIG_DIR = str(resources.files("minirlvr") / "configs")  # package data: shipped in the wheel too
CUDA_ALLOWANCE = 1.0 * GiB  # CUDA context + cuBLAS workspace + loaded kernels (~0.5 GiB), caching-allocator slack
SAFETY = 0.10  # share of the card kept free when deciding what fits: fragmentation, the estimate's error
GROUPS = (4, 8, 16)  # the group sizes largest_fit reports
NF4_BLOCK = 64  # bitsandbytes' NF4 block size: one absmax per 64 weights
NESTED_BLOCK = 256  # double quantization: the uint8 absmaxes are themselves quantized in blocks of 256
ATTENTION_SEGMENTS = 16  # the attention stage's segments per record: template, task, response + one per constraint


class PlanError(ValueError):
    """A config file or setting the plan cannot use; the message names it."""


# ---------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Shape:
    """The numbers of a config.json that memory depends on."""
    hidden: int  # D
    intermediate: int  # I
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int  # V
    tied: bool  # LM head shares the embedding matrix
    qkv_bias: bool  # Qwen2 has biases on q, k, v
    qk_norm: bool  # Qwen3 normalizes q and k per head
    source: str = ""


@dataclass(frozen=True)
class Settings:
    """What one run does with the model (names as in Preset / TrainConfig)."""
    prompts_per_step: int  # B
    group_size: int  # G
    prompt_len: int  # P
    max_new_tokens: int  # L
    micro_batch_size: int
    load_in_4bit: bool = True
    lora_r: int = 16
    gradient_checkpointing: bool = True
    beta: float = 0.001  # > 0: a reference pass (adapter off) per step
    top_p: float = 1.0
    top_k: int = 0
    device: str = "cuda"  # "cuda": bf16 compute; "cpu": fp32 everywhere
    eval_max_new_tokens: int = 0  # the evaluation stage's max new tokens (0: no evaluation estimate)
    eval_batch_rows: int = 64  # rows the evaluation samples together (chat.complete's batch_rows)
    judge_batch_rows: int = 16  # judge / critic questions answered together (the LLM judge's batch_rows)
    judge_extra_tokens: int = 200  # a judge question: the request, a whole response and ~200 tokens of template
    judge_new_tokens: int = 16  # a judge answer (pointwise)


def shape_config_path(shape):
    """minirlvr/configs/<shape>.json: the config file a preset's `shape` names."""
    path = os.path.join(CONFIG_DIR, f"{shape}.json")
    if not os.path.isfile(path):
        raise PlanError(f"no config file for shape {shape!r}: expected {path}; pass --config PATH to a model's "
                        f"config.json (e.g. the one in a downloaded model's folder)")
    return path


def read_config(path):
    """Shape of a Hugging Face config.json; a missing or bad field is an error naming the file and the field."""
    cfg = read_json_object(path, "model config", PlanError)
    cfg = cfg.get("text_config", cfg)  # multimodal configs keep the language model's numbers here

    def num(field, default=None):
        value = cfg.get(field, default)
        if value is None:
            raise PlanError(f"{path}: field {field!r} is missing (a decoder config.json has it)")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PlanError(f"{path}: field {field!r} must be a positive integer, got {value!r}")
        return value

    hidden, heads = num("hidden_size"), num("num_attention_heads")
    model_type = cfg.get("model_type", "")
    return Shape(hidden=hidden, intermediate=num("intermediate_size"), layers=num("num_hidden_layers"),
                 heads=heads, kv_heads=num("num_key_value_heads", heads),
                 head_dim=num("head_dim") if cfg.get("head_dim") is not None else hidden // heads,
                 vocab=num("vocab_size"), tied=bool(cfg.get("tie_word_embeddings", False)),
                 qkv_bias=model_type == "qwen2" or bool(cfg.get("attention_bias", False)),
                 qk_norm=model_type.startswith("qwen3"), source=path)


def settings_from_preset(preset, **overrides):
    """Settings of a presets.Preset, with keyword overrides (group_size=..., max_new_tokens=...)."""
    s = Settings(prompts_per_step=preset.prompts_per_step, group_size=preset.group_size,
                 prompt_len=preset.prompt_len, max_new_tokens=preset.max_new_tokens,
                 micro_batch_size=preset.micro_batch_size, load_in_4bit=preset.load_in_4bit, lora_r=preset.lora_r,
                 gradient_checkpointing=preset.gradient_checkpointing, beta=preset.beta,
                 eval_max_new_tokens=preset.eval_max_new_tokens, eval_batch_rows=preset.eval_batch_rows,
                 judge_batch_rows=preset.judge_batch_rows)
    return replace(s, **overrides)


def check_settings(s):
    for name in ("prompts_per_step", "group_size", "prompt_len", "max_new_tokens", "micro_batch_size", "lora_r",
                 "eval_batch_rows", "judge_batch_rows"):
        if getattr(s, name) < 1:
            raise PlanError(f"setting {name!r} must be >= 1, got {getattr(s, name)}")
    if s.device not in ("cuda", "cpu"):
        raise PlanError(f"setting 'device' must be 'cuda' or 'cpu', got {s.device!r}")


# ---------------------------------------------------------------------------------------------- the arithmetic


def linear_shapes(m):
    """(in, out) of the linear layers of one decoder layer: q, k, v, o, gate, up, down (LoRA targets them all)."""
    q, kv, D, I = m.heads * m.head_dim, m.kv_heads * m.head_dim, m.hidden, m.intermediate
    return [(D, q), (D, kv), (D, kv), (q, D), (D, I), (D, I), (I, D)]


def param_counts(m):
    """Parameters by storage: the linear layers' weights (quantized in 4-bit) and everything else (kept dense)."""
    linear = m.layers * sum(i * o for i, o in linear_shapes(m))
    bias = m.layers * (m.heads + 2 * m.kv_heads) * m.head_dim if m.qkv_bias else 0
    norms = m.layers * (2 * m.hidden + (2 * m.head_dim if m.qk_norm else 0)) + m.hidden  # + the final norm
    embed = m.vocab * m.hidden * (1 if m.tied else 2)  # an untied LM head is a second (V, D) matrix
    return {"linear": linear, "dense": bias + norms + embed}


def nf4_bytes(n, count):
    """bitsandbytes NF4 with double quantization, for `count` matrices of n weights in all: 4 bits per weight, a
    uint8 absmax per block of 64, an fp32 absmax per 256 of those, and ~1 KiB of codebook/offset per matrix."""
    return n // 2 + math.ceil(n / NF4_BLOCK) + 4 * math.ceil(n / NF4_BLOCK / NESTED_BLOCK) + 1088 * count


def lora_params(m, r):
    """A (r, in) + B (out, r) per adapted linear layer."""
    return m.layers * sum(r * (i + o) for i, o in linear_shapes(m))


def layer_bytes(m, a, cast, r, T, lora=True):
    """Bytes per token of one decoder layer (RMSNorm, GQA attention via SDPA, SwiGLU MLP, LoRA on each linear).

    a = bytes of the compute dtype; cast = 1 when peft casts each adapted layer's input to the fp32 adapters (bf16
    compute); T = tokens per row (the attention mask spans T); lora = adapters on (off in the reference pass).
    Returns (saved, forward, backward): what autograd keeps for backward, the most alive at once in a forward
    without grad (reference pass, checkpointed forward, sampling), the gradients alive at once in backward."""
    D, I, H = m.hidden, m.intermediate, m.heads
    q, kv = m.heads * m.head_dim, m.kv_heads * m.head_dim
    saved = (2 * (4 * D + 4)  # each RMSNorm keeps its input in fp32 (a copy under bf16) and rsqrt
             + a * D  # normed input of q/k/v (one tensor shared by the three matmuls)
             + (4 * (q + kv) if m.qk_norm else 0)  # Qwen3's per-head norms of q and k: fp32 inputs
             + a * 3 * q  # rotated q, and k, v repeated to all heads (repeat_kv: a padding mask rules out GQA SDPA)
             + a * q + 4 * H  # SDPA output (also o_proj's input: already laid out (T, H, hd)) + fp32 logsumexp
             + a * T  # SDPA turns the boolean padding mask into an additive one of the compute dtype, per layer
             + a * D  # normed input of gate/up
             + 4 * a * I  # SiLU input (gate), SiLU output and up (the product's inputs), product (down's input)
             + 7 * 4 * r  # each lora_A output (fp32), which lora_B keeps
             + cast * 4 * (3 * D + q + 2 * D + I))  # the fp32 copy of each adapted layer's input, kept by lora_A
    # Forward without grad, the most alive at once. At SDPA: the layer's input (its caller still holds it), the
    # normed input, rotated q and k, v, k and v repeated, the additive mask, the output. In the MLP: the input, the
    # residual, the normed input, then SiLU(gate) beside up_proj's base output and its LoRA branch's fp32 output and
    # that times the scaling (bf16: the branch's fp32 copy of the input too); without adapters the product's inputs
    # and output.
    attn = a * 2 * D + a * (4 * q + 2 * kv + T)
    mlp = a * 3 * D + (cast * 4 * D + 2 * a * I + 2 * 4 * I if lora else 3 * a * I)
    forward = max(mlp, attn)
    # Backward through the MLP: down_proj makes its input's gradient (bf16: its LoRA branch's fp32 one too) while the
    # saved product is still held; the product's backward then makes two (SiLU output's, up's) after it is freed.
    backward = 2 * a * I + cast * 4 * I
    return saved, forward, backward


def logprob_kernel_bytes(m, n, a, device):
    """Buffers of kernels/logprobs.py for n trained tokens: (forward, forward with entropy, backward).

    GPU (Triton): forward partials (m, s0, s1, z_t) over <= 64 vocabulary splits; backward the (n, chunk) d buffer
    (at most 2**27 elements), an fp32 grad_hidden accumulator and one fp32 chunk product. CPU (chunked PyTorch):
    (rows, vocab) fp32 tiles of at most ROW_CHUNK x VOCAB_CHUNK (z and exp(z), plus exp(z) z for the entropy) and
    the fp32 grad_hidden."""
    from minirlvr.kernels.logprobs import ROW_CHUNK, VOCAB_CHUNK

    if n == 0:
        return 0, 0, 0
    if device == "cuda":
        chunk = min(m.vocab, max(1024, min(32768, (2 ** 27 // n) // 128 * 128)))  # logprobs._dlogits_chunk
        partials = 4 * 4 * n * 64 + 8 * n
        return partials, partials, n * chunk * a + 2 * 4 * n * m.hidden + a * n * m.hidden
    tile = 4 * min(n, ROW_CHUNK) * min(m.vocab, VOCAB_CHUNK)
    return 2 * tile, 3 * tile, tile + 4 * n * m.hidden


LABELS = {
    "weights_4bit": "weights: linear layers in 4-bit NF4 + quantization constants",
    "weights_dense": "weights: embeddings, LM head, norms, biases",
    "lora": "LoRA: parameters + gradients + AdamW moments (fp32)",
    "kv_cache": "sampling: static KV cache, N = B x G rows of P + L tokens",
    "sampling_logits": "sampling: logits + sampling temporaries (softmax, fp64 CDF, top-p)",
    "decode": "sampling: decode step (previous logits + activations or new logits)",
    "prefill": "sampling: prefill, B x P tokens (before the cache is repeated G times)",
    "dequant": "4-bit: one weight matrix dequantized per matmul",
    "rollouts": "training: rollout tensors (ids, masks, old/ref log-probs)",
    "reference": "training: reference pass (no grad, adapter off), one micro-batch",
    "activations": "training: activations kept for backward, one micro-batch",
    "recompute": "training: one layer recomputed + its backward",
    "logprob": "training: final norm + head input + log-prob kernel buffers",
}


SLOT_ROUND = 128  # engine/sampler.py's SLOT_ROUND: the compiled path's cache slots are a multiple of it


def sampling_bytes(m, a, cast, r, B, G, P, L, top_p=1.0, top_k=0, static=True, slot_round=1):
    """sampler.generate's memory: prefill B prompts of P tokens, repeat the cache G times, decode N = B * G rows for
    L tokens. static: the fast path (the default on every device), whose cache is allocated whole, for N rows of
    P + L tokens (rounded up to slot_round: the compiled path on CUDA), and filled from the prefill's cache; else
    the eager path's DynamicCache, which grows by a torch.cat per step. Returns its parts and "sampling", the
    largest of the prefill, copy and decode moments."""
    N, V = B * G, m.vocab
    T = -(-(P + L) // slot_round) * slot_round if static else P + L
    e = {}
    kv_tok = 2 * m.layers * m.kv_heads * m.head_dim * a  # K and V of one token in every layer
    e["kv_cache"] = kv_tok * N * T
    # sample_token at its peak: the fp32 logits, logits / temperature beside log_softmax, or log_softmax, exp()
    # and its fp64 cumulative sum (inverse-CDF sampling); top-p adds the sort (values + int64 indices), the
    # cumulative mass before each token, the drop mask and the filtered copy (all alive until it returns); top-k
    # one masked copy
    per_logit = 3 * 4 + 8 + (21 if top_p < 1.0 else 0) + (4 if top_k > 0 else 0)
    e["sampling_logits"] = per_logit * N * V
    # a decode forward runs while the previous step's fp32 logits are held: its activations (eager: torch.cat grows
    # each layer's cache, old and new K of one layer at once; static: the layer's K read for attention is about as
    # large), then its new logits (+ their fp32 copy under bf16)
    step_act = N * layer_bytes(m, a, cast, r, T)[1] + kv_tok // (2 * m.layers) * N * T
    e["decode"] = 4 * N * V + max(step_act, (a + 4 * cast) * N * V)
    # prefill: B x P tokens with the boolean (B, 1, P, P) mask; the last position's logits only
    e["prefill"] = B * P * layer_bytes(m, a, cast, r, P)[1] + B * P * P + (a + 4 * cast) * B * V
    # static: the prompt's cache is copied into the whole static one, one layer's K (or V) repeated G times at a time,
    # while the first logits, repeated to N rows, are held
    copy = kv_tok * B * P + e["kv_cache"] + kv_tok // (2 * m.layers) * N * P + 4 * N * V if static else 0
    e["sampling"] = max(kv_tok * B * P + e["prefill"], copy, e["kv_cache"] + max(e["sampling_logits"], e["decode"]))
    return e


def estimate(m, s):
    """Bytes of each part of one GRPO step for model shape `m` and settings `s`, plus the phases and the peak.

    Returns a dict: the LABELS keys; "sampling" and "training" (each phase's own memory at its peak, 4-bit
    dequantization included); "persistent" (weights + LoRA state); "peak" = persistent + max(sampling, training);
    "allowance" (CUDA context and allocator, 0 on a CPU); "total" = peak + allowance; "eval" and "eval_total" (the
    evaluation stage's sampling, alone and with the rest; 0 without eval_max_new_tokens); "attention" and
    "attention_total" (the attention stage's forward of one prompt + response, alone and with the rest; 0 without
    eval_max_new_tokens); "params"."""
    check_settings(s)
    gpu = s.device == "cuda"
    a = 2 if gpu else 4  # model.py: bf16 on a GPU, fp32 on a CPU
    cast = int(a != 4)  # peft casts a layer's input to the fp32 adapters only when the compute dtype is not fp32
    B, G, P, L = s.prompts_per_step, s.group_size, s.prompt_len, s.max_new_tokens
    N, T = B * G, P + L
    M = min(s.micro_batch_size, N)
    D, r = m.hidden, s.lora_r
    counts = param_counts(m)
    e = {}
    if s.load_in_4bit:
        e["weights_4bit"] = nf4_bytes(counts["linear"], 7 * m.layers)
        # bitsandbytes dequantizes the weight for every matmul with more than one row (forward and backward)
        e["dequant"] = a * max(i * o for i, o in linear_shapes(m))
    else:
        e["weights_4bit"], e["dequant"] = 0, 0
    e["weights_dense"] = a * (counts["dense"] + (0 if s.load_in_4bit else counts["linear"]))
    e["lora"] = 16 * lora_params(m, r)  # fp32 parameter, gradient (kept between steps), AdamW exp_avg, exp_avg_sq

    rounded = SLOT_ROUND if gpu else 1  # sampler.generate's default: compiled on CUDA, static elsewhere
    e.update(sampling_bytes(m, a, cast, r, B, G, P, L, s.top_p, s.top_k, slot_round=rounded))
    e["sampling"] += e["dequant"]
    # the evaluation stage (chat.complete): eval_batch_rows prompts at a time, one greedy sample each
    e["eval"] = (sampling_bytes(m, a, cast, r, s.eval_batch_rows, 1, P, s.eval_max_new_tokens,
                                slot_round=rounded)["sampling"] + e["dequant"] if s.eval_max_new_tokens else 0)
    # the attention stage (evaluation/attention.stage_scores): one held-out prompt + its greedy response (P + the
    # evaluation's tokens) at a time, no grad: a layer's forward, the boolean mask, the logits at every position
    # (the forward computes them), the hook's slice of the response queries and their per-segment mass (the
    # kernel never forms T x T); its responses come from the evaluation's sampling, counted above
    Ta, R = P + s.eval_max_new_tokens, s.eval_max_new_tokens
    e["attention"] = (Ta * layer_bytes(m, a, cast, r, Ta)[1] + Ta * Ta + a * Ta * m.vocab
                      + a * m.heads * m.head_dim * R + 4 * m.heads * R * ATTENTION_SEGMENTS + e["dequant"]
                      if s.eval_max_new_tokens else 0)
    # the LLM judge and critic (the base, adapter off): judge_batch_rows questions of request + response + template
    e["judge"] = sampling_bytes(m, a, cast, r, s.judge_batch_rows, 1, P + L + s.judge_extra_tokens, s.judge_new_tokens,
                                slot_round=rounded)["sampling"] + e["dequant"]

    # --- training (train.py): reference pass, then the policy pass, micro-batch by micro-batch
    # int64 tokens and prompt ids, masks, fp32 sampling / reference / policy log-probs
    e["rollouts"] = N * (L * (8 + 4 + 3 * 4) + P * 2 * 8)
    tok, head_tok = M * T, M * L  # tokens per micro-batch; trained tokens (worst case: every row runs to L)
    saved_tok, fwd_tok, bwd_tok = layer_bytes(m, a, cast, r, T)
    # shared by all layers: the boolean (M, 1, T, T) mask and the rotary cos / sin
    extras = M * T * T + 2 * a * m.head_dim * tok
    lp_fwd, lp_ent, lp_bwd = logprob_kernel_bytes(m, head_tok, a, s.device)
    head_in = a * head_tok * D  # hidden[mask]: the head's input (token_logprobs keeps it for backward)
    if s.beta > 0:  # one layer at a time, then the final hidden states through the head
        ref_tok = layer_bytes(m, a, cast, r, T, lora=False)[1]
        e["reference"] = extras + max(tok * ref_tok, tok * a * D + head_in + lp_fwd)
    else:
        e["reference"] = 0
    if s.gradient_checkpointing:
        # non-reentrant checkpointing keeps each layer's input; backward recomputes one layer at a time (under
        # fp32 its first RMSNorm keeps that same input tensor instead of a copy) next to the gradient in and out
        e["activations"] = m.layers * a * D * tok + extras
        e["recompute"] = tok * (saved_tok - (4 * D if a == 4 else 0) + bwd_tok + 2 * a * D)
    else:
        # the shared-prefix pass (engine/model.shared_prefix_hidden, #24): each distinct prompt of a micro-batch
        # once, then the completions (per-token layer memory at the full key length T: an upper bound for the
        # prompt call); each layer also keeps the keys and values of all M rows, the gathered prompts' and the
        # completions' concatenated (attention's backward reads them)
        if G > 1 and M > 1:
            tok = -(-M // G) * P + M * (L - 1)
            extras = M * L * T + 2 * a * m.head_dim * tok
            kv = M * T * 2 * m.kv_heads * m.head_dim * a
        else:
            kv = 0
        e["activations"] = m.layers * (saved_tok * tok + kv) + extras
        e["recompute"] = tok * (bwd_tok + 2 * a * D)
    # the head: the final RMSNorm's fp32 input, the head input, the kernel's forward (with entropy) or backward
    # with the gradient of the full hidden states it scatters into
    e["logprob"] = tok * (4 * D + 4) + head_in + max(lp_ent, lp_bwd + a * tok * D)
    # over the held activations the policy pass peaks in a layer's forward, in the head, or in a layer's backward
    policy = e["activations"] + max(tok * fwd_tok, e["logprob"], e["recompute"])
    e["training"] = e["rollouts"] + max(e["reference"], policy) + e["dequant"]

    e["persistent"] = e["weights_4bit"] + e["weights_dense"] + e["lora"]
    e["peak"] = e["persistent"] + max(e["sampling"], e["training"])
    e["allowance"] = CUDA_ALLOWANCE if gpu else 0
    e["total"] = e["peak"] + e["allowance"]
    e["eval_total"] = e["persistent"] + e["eval"] + e["allowance"] if e["eval"] else 0
    e["judge_total"] = e["persistent"] + e["judge"] + e["allowance"]
    e["attention_total"] = e["persistent"] + e["attention"] + e["allowance"] if e["attention"] else 0
    e["params"] = counts["linear"] + counts["dense"]
    return e


def usable_bytes(gpu_gb):
    """What a card of gpu_gb GiB offers the run: the card less the safety margin."""
    return gpu_gb * GiB * (1 - SAFETY)


def fits(m, s, gpu_gb, key="total"):
    """Whether the training step ("total") or the evaluation stage ("eval_total") fits the card."""
    return estimate(m, s)[key] <= usable_bytes(gpu_gb)


def largest(m, s, field, gpu_gb, hi, key="total"):
    """The largest value of the integer setting `field` (1..hi) at which the estimate fits, or 0 if even 1 does
    not. The estimate grows with G, L, the micro-batch and the evaluation rows, so a bisection finds it."""
    ok = lambda v: fits(m, replace(s, **{field: v}), gpu_gb, key)  # noqa: E731
    if not ok(1):
        return 0
    if ok(hi):
        return hi
    lo = 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def largest_fit(m, s, gpu_gb):
    """What fits a card of gpu_gb GiB, the other settings as in `s` (0 = nothing fits): the largest completion
    length L for each G in GROUPS and at s's G, the largest G at s's L, the largest micro-batch."""
    return {"L_by_G": {g: largest(m, replace(s, group_size=g), "max_new_tokens", gpu_gb, 1 << 17)
                       for g in sorted({*GROUPS, s.group_size})},
            "G": largest(m, s, "group_size", gpu_gb, 4096),
            "micro_batch": largest(m, s, "micro_batch_size", gpu_gb, s.prompts_per_step * s.group_size)}


# ---------------------------------------------------------------------------------------------- the command


def gib(x):
    return f"{x / GiB:.2f}"


def report(m, s, gpu_gb, name="", planned=None):
    """The plan as text, and whether the run fits: a table of components (GiB), the phases, the peak, the
    verdict for a card of gpu_gb GiB, what fits it and, if the run does not, which setting to lower. The advice is
    printed as `reproduce` command lines of preset `name` with the presets.OPTIONS values in `planned` (those the
    plan was asked about) and the advised one: each runs as printed."""
    e = estimate(m, s)
    B, G, P, L = s.prompts_per_step, s.group_size, s.prompt_len, s.max_new_tokens
    M = min(s.micro_batch_size, B * G)
    gpu = s.device == "cuda"
    dtype = "bf16" if gpu else "fp32"
    lines = [
        f"plan{' for preset ' + name if name else ''}: config {m.source}",
        f"  model: {e['params'] / 1e9:.3g}B parameters (D={m.hidden}, I={m.intermediate}, {m.layers} layers, "
        f"{m.heads} heads / {m.kv_heads} KV heads of {m.head_dim}, V={m.vocab}, {'tied' if m.tied else 'untied'} "
        f"head); {'4-bit NF4' if s.load_in_4bit else dtype} base + LoRA r={s.lora_r} "
        f"({lora_params(m, s.lora_r) / 1e6:.3g}M trainable)",
        f"  step: B={B} prompts x G={G} = N={B * G} rollouts of P={P} + L={L} tokens, micro-batch {M}, gradient "
        f"checkpointing {'on' if s.gradient_checkpointing else 'off'}, {dtype} compute on "
        f"{'a GPU' if gpu else 'the CPU'}",
        "",
        "ESTIMATES from the config by arithmetic, until a GPU run measures them (train logs peak_mem_gb per step)",
        "",
        "| component | GiB |",
        "|---|---:|",
    ]
    lines += [f"| {label} | {gib(e[key])} |" for key, label in LABELS.items() if e[key]]
    lines += [
        f"| **sampling phase** (KV cache + the larger of logits and decode step, or prefill) | {gib(e['sampling'])} |",
        f"| **training phase** (rollouts + the larger of reference and policy pass) | {gib(e['training'])} |",
        f"| **peak** = weights + LoRA state + max(sampling, training) | {gib(e['peak'])} |",
    ]
    if e["allowance"]:
        lines.append(f"| CUDA context + allocator allowance (fixed) | {gib(e['allowance'])} |")
        lines.append(f"| **total, one training step** | {gib(e['total'])} |")
    if e["eval"]:
        lines.append(f"| evaluation stage: {s.eval_batch_rows} rows of P + {s.eval_max_new_tokens} tokens, with weights"
                     f"{' and allowance' if e['allowance'] else ''} | {gib(e['eval_total'])} |")
    if e["attention"]:
        lines.append(f"| attention stage: one prompt + response of P + {s.eval_max_new_tokens} tokens at a time, with "
                     f"weights{' and allowance' if e['allowance'] else ''} | {gib(e['attention_total'])} |")
    lines.append(f"| judge / critic: {s.judge_batch_rows} questions of P + L + {s.judge_extra_tokens} tokens, with "
                 f"weights{' and allowance' if e['allowance'] else ''} | {gib(e['judge_total'])} |")
    lines.append("")
    if not gpu:
        lines.append("CPU mode: tensors only (the process's libraries, ~0.5 GiB, come on top); no card verdict.")
        return "\n".join(lines), True
    usable = usable_bytes(gpu_gb)
    ok = e["total"] <= usable
    lines.append(f"card: {gpu_gb:g} GiB, {SAFETY:.0%} kept free -> {gib(usable)} GiB usable: training step "
                 f"{'FITS' if ok else 'DOES NOT FIT'} ({gib(e['total'])} GiB, estimate)")
    fit = largest_fit(m, s, gpu_gb)
    advise = functools.partial(advised, name, planned or {})
    if not ok:
        lines += suggestion(m, s, e, fit, gpu_gb, advise)
    by_g = ", ".join(f"G={g}: {v or 'none'}" for g, v in fit["L_by_G"].items())
    lines.append(f"largest completion length L that fits (B={B}, micro-batch {M}): {by_g}")
    lines.append(f"largest G at L={L}: {fit['G'] or 'none'} (estimates)")
    # the other stages, each with the one setting that shrinks it: (estimate, stage, setting, advice, when none fits)
    stages = [("eval_total", "evaluation", "eval_batch_rows", "evaluate {} rows at a time", "not even one row"),
              ("judge_total", "the judge", "judge_batch_rows", "ask {} questions at a time", "not even one question"),
              ("attention_total", "the attention stage", "eval_max_new_tokens",
               "shorten the evaluation's responses to {} tokens", "not even with one-token responses")]
    stages_ok = True
    for key, stage, field, what, none in stages:
        if not e[key] or e[key] <= usable:
            continue
        stages_ok = False
        v = largest(m, s, field, gpu_gb, getattr(s, field), key)
        lines.append(f"{stage} ({gib(e[key])} GiB) DOES NOT FIT: {what.format(v) if v else none} (estimate)"
                     + (":" if v else ""))
        lines += [advise(field, v)] if v else []
    return "\n".join(lines), ok and stages_ok


def advised(name, planned, field, value):
    """One line of advice: the command that runs the planned settings with `field` set to `value`."""
    values = {**{k: v for k, v in planned.items() if k != field}, field: value}  # the advised one last
    return "  " + (presets.reproduce_command(name, values) if name else presets.options_line(values))


def suggestion(m, s, e, fit, gpu_gb, advise):
    """Lines saying which setting to lower, and to what, for a training step that does not fit."""
    floor = e["persistent"] + e["allowance"]
    if floor > usable_bytes(gpu_gb):
        need = math.ceil(floor / GiB / (1 - SAFETY))
        return [f"--gpu-gb {gpu_gb:g} is too small: the weights, LoRA state and CUDA allowance alone take "
                f"{gib(floor)} GiB; use a card of at least {need} GiB or a smaller model"
                f"{'' if s.load_in_4bit else ', or load it in 4-bit'} (estimate)"]
    # G = 1 is no GRPO (every advantage is 0): a group that small is no way to fit
    options = [("max_new_tokens", fit["L_by_G"][s.group_size]), ("group_size", fit["G"] if fit["G"] > 1 else 0),
               ("micro_batch_size", fit["micro_batch"])]
    if not s.gradient_checkpointing and fits(m, replace(s, gradient_checkpointing=True), gpu_gb):
        options.append(("gradient_checkpointing", True))
    options = [advise(field, v) for field, v in options if v]
    if not options:
        return [f"--gpu-gb {gpu_gb:g} is too small for this preset with any one of "
                f"{', '.join(presets.option(f) for f in ('max_new_tokens', 'group_size', 'micro_batch_size'))} "
                f"lowered: lower several together or use a larger card (estimate)"]
    return ["to fit, run one of (each alone, the other settings as planned; estimate):"] + options
