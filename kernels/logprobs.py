"""Per-token log-probabilities (and entropy) from final hidden states and the LM head, never building the logits.

GRPO needs, for every completion token, log p(target) under the policy and the reference model. The usual way,
`log_softmax(hidden @ weight.T)[target]`, builds an (N, V) tensor: with Qwen's V = 151,936 and N = 16k tokens that
is 5.0 GB of bf16 logits plus 10 GB of fp32 log-softmax, and again as much in backward. This file computes the
same numbers blockwise so that nothing of size N*V ever exists, forward or backward.

What it does not do: no loss reduction, no ignore_index (padded positions need a valid token id; the caller
multiplies their logp by `mask`, which gives them an exactly zero gradient), no label smoothing, no gradient
filtering or any other approximation. The entropy output is for logging only: it is NOT differentiable
(autograd treats it as a constant).

The math
--------
With hidden h (N, D), weight W (V, D), temperature T and targets t (N,):

    z_iv    = (h_i . W_v) / T                                       logits, one (BLOCK_N, BLOCK_V) tile at a time
    lse_i   = log sum_v exp(z_iv)                                   online over vocabulary blocks (below)
    logp_i  = z_i,t_i - lse_i
    H_i     = lse_i - sum_v p_iv z_iv = log s0_i - s1_i / s0_i      entropy, p = exp(z - lse)

Forward, online log-sum-exp (Milakov & Gimelshein 2018, "Online normalizer calculation for softmax"): keep per
row a running max m, s0 = sum exp(z - m) and s1 = sum exp(z - m) (z - m). A new block with max m' > m rescales
by a = exp(m - m'):   s0 <- a s0 + sum_blk exp(z - m'),   s1 <- a (s1 + (m - m') s0) + sum_blk exp(z - m')(z - m').
Keeping s1 relative to the running max (instead of sum p z) avoids the cancellation lse - E[z] when |z| ~ 1e4;
for the same reason lse is kept as the pair (m, log s0) and logp = (z_t - m) - log s0, so that logits of
magnitude 1e5 lose nothing to the rounding of m + log s0.
The same rule merges partial results from disjoint vocabulary ranges, which is how the Triton forward splits V
over programs ("split-V", like split-K in flash-decoding) and merges the partials in a few (N, S) torch ops.

Backward, by hand: with upstream gradient g_i = dL/dlogp_i,

    dL/dz_iv      = g_i (1[v = t_i] - p_iv)          p = exp((z - m) - log s0), recomputed blockwise
    dL/dlogits_iv = g_i (1[v = t_i] - p_iv) / T      = d_iv   (the logits are h W^T, before dividing by T)
    grad_hidden   = d @ W        (N, D)
    grad_weight   = d^T @ h      (V, D)              only when weight.requires_grad (a full fine-tune; tied
                                                     embeddings are fine: autograd sums into the shared storage)

The backward saves only h, W, t, m and log s0 ((N,) each) and recomputes z, so it costs one matmul more than
the naive path. Rows with g_i = 0 (masked tokens) get exactly zero gradient: every term is multiplied by g_i.
grad_hidden is computed only when hidden requires grad, grad_weight only when weight does. The backward is
written by hand, so it is once-differentiable: a double backward raises.
The Triton backward runs vocabulary chunk by chunk: a kernel recomputes the chunk's z tiles in fp32 and writes d
for that chunk only, (N, chunk) in the input dtype; two library matmuls (cuBLAS on a GPU) then add d @ W[chunk]
to grad_hidden and write d^T @ h into grad_weight[chunk]. The grad_hidden product leaves cuBLAS in fp32 and is
summed in fp32, so the ~19 chunks at V = 151,936 are rounded to the input dtype once, at the end, not once each.
No atomics, so it is deterministic.

Memory and traffic (N = 16k, D = 3584, V = 151,936, bf16; arithmetic, not measured: no GPU was available)
-----------------------------------------------------------------------------------------------------------
naive:  logits 2 N V = 5.0 GB, fp32 log_softmax 4 N V = 10 GB saved for backward, and in backward two more
        (N, V) fp32 gradients; peak well above 20 GB, all of it proportional to V.
fused:  forward: partials 4 * 4 N S bytes (S <= 64 vocabulary splits: <= 17 MB), (m, log s0) 8 N = 128 KB.
        backward: the d chunk, at most 2**27 elements = 256 MB, an fp32 grad_hidden accumulator 4 N D = 235 MB
        and one fp32 chunk product 4 N D = 235 MB: about 0.7 GB, none of it proportional to V (grad_weight,
        when trained, is written chunk by chunk straight into its bf16 (V, D) output).
flops:  naive 3 matmuls of 2 N V D = 17.8 TFLOP each; fused 4 (z is recomputed in backward), so the fused path
        cannot be faster than 4/3 of the three unavoidable matmuls (3 vs 2 when grad_weight is not needed).
        It saves the (N, V) traffic instead: naive writes and reads about 35 GB of fp32/bf16 (N, V) tensors;
        fused moves d once, 2 N V bytes written and read twice = 15 GB, and nothing else of size N V.

Backends (chosen once per device type at import, overridable per call with `backend=` or for the whole process
with MINIRLVR_LOGPROB_BACKEND, read at import):
  "triton"     the @triton.jit kernels below (forward; backward with two library matmuls): the default on CUDA.
               On CPU tensors they run only under Triton's interpreter, which is all-or-nothing per process
               (kernels/triton_env.py holds the one rule both kernel files use): TRITON_INTERPRET must be set
               before `import triton` (tests/conftest.py does), and then nothing is compiled, so on a GPU machine
               the compiled tests need TRITON_INTERPRET=0.
  "torch"      the same blockwise algorithm in chunked PyTorch, chunking both tokens and vocabulary: the default
               on CPU. Its scratch memory is one preallocated (ROW_CHUNK, VOCAB_CHUNK) fp32 tile per call (two
               with entropy; 16 MB each), written with `out=` and in-place ops, plus a (VOCAB_CHUNK, D) fp32 copy
               of the head's chunk when the head is not fp32: nothing proportional to V.
  "reference"  `token_logprobs_reference`: full logits, the specification and test oracle.
All accumulate in fp32 whatever the input dtype (fp32, bf16, fp16). The Triton kernels multiply bf16/fp16 tiles
on tensor cores (exact products, fp32 accumulation); for fp32 inputs they use exact fp32 ("ieee") dots, not TF32
(slow on a GPU: bf16 is the fast path). d is rounded once to the input dtype before its two matmuls, as in any
mixed-precision backward; the grad_hidden products are not rounded again before they are summed. The GPU block
sizes are untuned and the Triton path has only run under the interpreter and been compiled for sm_90 (tests);
its speed on a GPU is unmeasured.

Input checks: shapes, dtypes, devices and contiguity raise ValueError naming the argument. The range check on
`targets` is one reduction plus `.item()`, i.e. ONE host-device sync per call on CUDA: accepted deliberately,
since an out-of-range id would otherwise read outside the weight matrix.
"""

import contextlib
import math
import os

import torch
from torch.autograd.function import once_differentiable

from minirlvr.kernels.triton_env import INTERPRETED, check_triton_device, jit as _jit, tl, triton

BACKENDS = ("triton", "torch", "reference")
ROW_CHUNK = 2048  # torch backend: tokens per chunk
VOCAB_CHUNK = 2048  # torch backend: vocabulary entries per chunk -> 16 MB fp32 per (ROW_CHUNK, VOCAB_CHUNK) tile

_ENV_BACKEND = os.environ.get("MINIRLVR_LOGPROB_BACKEND") or None
if _ENV_BACKEND is not None and _ENV_BACKEND not in BACKENDS:
    raise ValueError(f"MINIRLVR_LOGPROB_BACKEND={_ENV_BACKEND!r}: expected one of {BACKENDS}")


def token_logprobs_reference(hidden, weight, targets, temperature=1.0, return_entropy=False):
    """Plain PyTorch: full logits, log_softmax, gather. hidden (N, D), weight (V, D), targets (N,) -> (N,) fp32."""
    logits = (hidden.float() @ weight.float().T) / temperature  # (N, V)
    logsm = torch.log_softmax(logits, dim=-1)  # (N, V)
    logp = logsm.gather(-1, targets[:, None]).squeeze(-1)  # (N,)
    if not return_entropy:
        return logp
    entropy = -(logsm.exp() * logsm).sum(-1)  # (N,)
    return logp, entropy.detach()


def default_backend(device):
    """The backend a call on `device` uses when `backend=` is not given (printable, for run logs)."""
    if _ENV_BACKEND is not None:
        return _ENV_BACKEND
    on_gpu = torch.device(device).type == "cuda" and triton is not None and not INTERPRETED
    return "triton" if on_gpu else "torch"


def token_logprobs(hidden, weight, targets, temperature=1.0, return_entropy=False, *, backend=None):
    """log softmax(hidden @ weight.T / temperature)[targets] without materializing the (N, V) logits.

    hidden (N, D) fp32/bf16/fp16, weight (V, D) same dtype, targets (N,) int64 in [0, V), all contiguous on one
    device -> logp (N,) fp32, and entropy (N,) fp32 (non-differentiable) if return_entropy. Differentiable with
    respect to hidden, and to weight when it requires grad. backend: "triton", "torch" or "reference" (see the
    module docstring); None picks `default_backend(hidden.device)`.
    """
    _check_inputs(hidden, weight, targets, temperature)
    backend = default_backend(hidden.device) if backend is None else backend
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: expected one of {BACKENDS}")
    if backend == "reference":
        return token_logprobs_reference(hidden, weight, targets, temperature, return_entropy)
    if backend == "triton":
        check_triton_device(hidden.device, fallback="torch")
    logp, entropy = _TokenLogprobs.apply(hidden, weight, targets, 1.0 / temperature, backend, return_entropy)
    return (logp, entropy) if return_entropy else logp


def _check_inputs(hidden, weight, targets, temperature):
    for name, x in (("hidden", hidden), ("weight", weight), ("targets", targets)):
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if hidden.dim() != 2:
        raise ValueError(f"hidden must be (N, D), got shape {tuple(hidden.shape)}")
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[1] or weight.shape[0] == 0:
        raise ValueError(f"weight must be (V, D) with V > 0 and D = hidden.shape[1] = {hidden.shape[1]}, "
                         f"got shape {tuple(weight.shape)}")
    if targets.dim() != 1 or targets.shape[0] != hidden.shape[0]:
        raise ValueError(f"targets must be (N,) with N = hidden.shape[0] = {hidden.shape[0]}, "
                         f"got shape {tuple(targets.shape)}")
    if hidden.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"hidden must be float32, bfloat16 or float16, got {hidden.dtype}")
    if weight.dtype != hidden.dtype:
        raise ValueError(f"weight dtype {weight.dtype} must equal hidden dtype {hidden.dtype}")
    if targets.dtype != torch.int64:
        raise ValueError(f"targets must be int64, got {targets.dtype}")
    for name, x in (("weight", weight), ("targets", targets)):
        if x.device != hidden.device:
            raise ValueError(f"{name} is on {x.device} but hidden is on {hidden.device}")
    for name, x in (("hidden", hidden), ("weight", weight), ("targets", targets)):
        if not x.is_contiguous():
            raise ValueError(f"{name} must be contiguous (call .contiguous() first)")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            0 < temperature < math.inf):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    # one reduction and one host sync (on CUDA, a device sync): see the module docstring
    if targets.numel() and bool(((targets < 0) | (targets >= weight.shape[0])).any()):
        bad = targets[(targets < 0) | (targets >= weight.shape[0])][0].item()
        raise ValueError(f"targets must lie in [0, V={weight.shape[0]}), found {bad}")


class _TokenLogprobs(torch.autograd.Function):
    """forward: logp_i = z_i,t_i - lse_i (and entropy) with z = h W^T / T, blockwise; saves h, W, t, m, log s0.
    backward: d = g (onehot(t) - exp(z - m - log s0)) / T recomputed blockwise; grad_h = d W (only when hidden
    needs it), grad_W = d^T h (only when weight does). The entropy output is marked non-differentiable. The
    backward is once-differentiable: it is written by hand with in-place ops, so a double backward raises
    instead of silently differentiating the wrong graph."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, inv_temp, backend, want_entropy):
        fwd = _triton_forward if backend == "triton" else _torch_forward
        logp, entropy, m, logs0 = fwd(hidden, weight, targets, inv_temp, want_entropy)  # (N,) each, fp32
        ctx.save_for_backward(hidden, weight, targets, m, logs0)
        ctx.inv_temp, ctx.backend = inv_temp, backend
        ctx.mark_non_differentiable(entropy)
        return logp, entropy

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_logp, grad_entropy):
        hidden, weight, targets, m, logs0 = ctx.saved_tensors
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if grad_logp is None or not (need_h or need_w):
            return None, None, None, None, None, None
        bwd = _triton_backward if ctx.backend == "triton" else _torch_backward
        grad_h, grad_w = bwd(hidden, weight, targets, m, logs0, grad_logp.float().contiguous(), ctx.inv_temp,
                             need_h, need_w)
        return grad_h, grad_w, None, None, None, None


# ----------------------------------------------------------------------------------------------------------------
# The "torch" backend: the blockwise algorithm in chunked PyTorch (the CPU default)
# ----------------------------------------------------------------------------------------------------------------

def _tile(buf, rows, cols):
    """A contiguous (rows, cols) view of the front of a flat buffer, so that `out=` and in-place ops write into it
    and no (ROW_CHUNK, VOCAB_CHUNK) temporary is ever allocated."""
    return buf[:rows * cols].view(rows, cols)


def _weight_chunk(weight, c0, wbuf):
    """Rows [c0, c0 + VOCAB_CHUNK) of the head in fp32: a view when it is fp32, else copied into `wbuf`."""
    w = weight[c0:c0 + VOCAB_CHUNK]  # (Vc, D)
    return w if wbuf is None else wbuf[:w.shape[0]].copy_(w)


def _torch_buffers(hidden, weight, count):
    """`count` flat fp32 tile buffers of ROW_CHUNK x VOCAB_CHUNK (16 MB at the defaults) and, for a head that
    is not fp32, one (VOCAB_CHUNK, D) fp32 buffer for its chunks: all the scratch memory one call uses."""
    N, (V, D) = hidden.shape[0], weight.shape
    tiles = [torch.empty(min(N, ROW_CHUNK) * min(V, VOCAB_CHUNK), device=hidden.device) for _ in range(count)]
    wbuf = None if weight.dtype == torch.float32 else torch.empty(min(V, VOCAB_CHUNK), D, device=hidden.device)
    return tiles, wbuf


def _torch_forward(hidden, weight, targets, inv_temp, want_entropy):
    N, V = hidden.shape[0], weight.shape[0]
    h = hidden.float()  # (N, D), no copy when already fp32
    m = torch.full((N,), -math.inf, device=h.device)  # (N,) running max
    s0 = torch.zeros(N, device=h.device)  # (N,) sum exp(z - m)
    s1 = torch.zeros(N, device=h.device)  # (N,) sum exp(z - m) (z - m)
    zt = torch.zeros(N, device=h.device)  # (N,) target logit
    (zbuf, *ebuf), wbuf = _torch_buffers(hidden, weight, 2 if want_entropy else 1)
    for c0 in range(0, V, VOCAB_CHUNK):
        w = _weight_chunk(weight, c0, wbuf)  # (Vc, D) fp32
        vc = w.shape[0]
        for r0 in range(0, N, ROW_CHUNK):
            r = slice(r0, r0 + ROW_CHUNK)
            nr = min(ROW_CHUNK, N - r0)
            z = torch.mm(h[r], w.T, out=_tile(zbuf, nr, vc)).mul_(inv_temp)  # (Nr, Vc)
            t = targets[r] - c0  # (Nr,)
            in_chunk = (t >= 0) & (t < vc)  # (Nr,)
            zc = z.gather(1, t.clamp(0, vc - 1)[:, None]).squeeze(1)  # (Nr,)
            zt[r] = torch.where(in_chunk, zc, zt[r])
            m_old = m[r]
            m_new = torch.maximum(m_old, z.amax(1))  # (Nr,); maximum and amax propagate NaN
            alpha = torch.exp(m_old - m_new)  # (Nr,); 0 on the first chunk (m_old = -inf)
            z.sub_(m_new[:, None])  # z - m'
            if want_entropy:
                shift = torch.where(s0[r] > 0, m_old - m_new, torch.zeros_like(m_new))  # avoid -inf * 0 on chunk 1
                e = torch.exp(z, out=_tile(ebuf[0], nr, vc))  # (Nr, Vc)
                s0_chunk = e.sum(1)  # (Nr,)
                s1[r] = alpha * (s1[r] + shift * s0[r]) + e.mul_(z).sum(1)
            else:
                s0_chunk = z.exp_().sum(1)  # (Nr,)
            s0[r] = alpha * s0[r] + s0_chunk
            m[r] = m_new
    logs0 = torch.log(s0)  # (N,)
    logp = (zt - m) - logs0  # (N,)
    entropy = logs0 - s1 / s0 if want_entropy else torch.zeros_like(logp)  # (N,)
    return logp, entropy, m, logs0


def _torch_backward(hidden, weight, targets, m, logs0, grad_logp, inv_temp, need_h, need_w):
    N, (V, D) = hidden.shape[0], weight.shape
    h = hidden.float()  # (N, D)
    g = grad_logp * inv_temp  # (N,): fold the 1/T of dz/dlogits into the row scale
    grad_h = torch.zeros_like(h) if need_h else None  # (N, D) fp32
    grad_w = torch.empty_like(weight) if need_w else None  # (V, D), filled chunk by chunk
    (dbuf,), wbuf = _torch_buffers(hidden, weight, 1)
    # a head that is not fp32 sums its chunk's gradient in one fp32 (Vc, D) buffer; an fp32 one directly in grad_w
    gw_buf = torch.empty(min(V, VOCAB_CHUNK), D, device=h.device) if need_w and wbuf is not None else None
    for c0 in range(0, V, VOCAB_CHUNK):
        w = _weight_chunk(weight, c0, wbuf)  # (Vc, D) fp32
        vc = w.shape[0]
        if need_w:
            gw = (grad_w[c0:c0 + vc] if gw_buf is None else gw_buf[:vc]).zero_()  # (Vc, D) fp32
        for r0 in range(0, N, ROW_CHUNK):
            r = slice(r0, r0 + ROW_CHUNK)
            nr = min(ROW_CHUNK, N - r0)
            d = torch.mm(h[r], w.T, out=_tile(dbuf, nr, vc)).mul_(inv_temp)  # (Nr, Vc) z, bitwise as in forward
            d.sub_(m[r][:, None]).sub_(logs0[r][:, None]).exp_().mul_(-g[r][:, None])  # -g p
            t = targets[r] - c0  # (Nr,)
            in_chunk = (t >= 0) & (t < vc)
            # + g at the target column; rows whose target is elsewhere add an exact 0 to some column
            d.scatter_add_(1, t.clamp(0, vc - 1)[:, None], (g[r] * in_chunk)[:, None])
            if need_h:
                grad_h[r].addmm_(d, w)
            if need_w:
                gw.addmm_(d.T, h[r])
        if gw_buf is not None:
            grad_w[c0:c0 + vc].copy_(gw)  # one rounding to the head's dtype
    return (grad_h.to(hidden.dtype) if need_h else None), grad_w


# ----------------------------------------------------------------------------------------------------------------
# The "triton" backend: kernels, then launchers
# ----------------------------------------------------------------------------------------------------------------

@_jit
def _tile_dot(h_rows, w_rows, row_ok, col_ok, D, BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr,
              BLOCK_D: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """(BLOCK_N, BLOCK_V) fp32 tile of hidden @ weight.T, looping over D in BLOCK_D steps; masked rows/columns
    give 0. Shared by the forward and the backward kernel, so both see bitwise the same logits."""
    acc = tl.zeros([BLOCK_N, BLOCK_V], tl.float32)
    for k in range(0, D, BLOCK_D):
        ks = k + tl.arange(0, BLOCK_D)
        k_ok = ks < D
        h = tl.load(h_rows + ks[None, :], mask=row_ok[:, None] & k_ok[None, :], other=0.0)
        w = tl.load(w_rows + ks[None, :], mask=col_ok[:, None] & k_ok[None, :], other=0.0)
        if UPCAST:  # the interpreter (triton 3.9) multiplies bf16 tiles wrongly; products are exact in fp32
            h = h.to(tl.float32)
            w = w.to(tl.float32)
        acc = tl.dot(h, tl.trans(w), acc, input_precision=PRECISION)
    return acc


@_jit
def _logprob_fwd_kernel(h_ptr, w_ptr, t_ptr, m_ptr, s0_ptr, s1_ptr, zt_ptr,
                        N, V, D, inv_temp, blocks_per_split,
                        BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr,
                        ENTROPY: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """One program: rows [pid_n BLOCK_N, +BLOCK_N) x vocabulary blocks [pid_s bps, (pid_s + 1) bps).
    Writes that range's partial (m, s0, s1, z_target) to column pid_s of the (N, S) buffers."""
    pid_n = tl.program_id(0)
    pid_s = tl.program_id(1)
    S = tl.num_programs(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    tgt = tl.load(t_ptr + rows, mask=row_ok, other=-1)
    h_rows = h_ptr + rows.to(tl.int64)[:, None] * D  # int64: V * D passes 2**31 for large heads
    m = tl.full([BLOCK_N], float("-inf"), tl.float32)
    s0 = tl.zeros([BLOCK_N], tl.float32)
    s1 = tl.zeros([BLOCK_N], tl.float32)
    zt = tl.zeros([BLOCK_N], tl.float32)
    b_end = tl.minimum((pid_s + 1) * blocks_per_split, tl.cdiv(V, BLOCK_V))
    for b in range(pid_s * blocks_per_split, b_end):
        cols = b * BLOCK_V + tl.arange(0, BLOCK_V)
        col_ok = cols < V
        w_rows = w_ptr + cols.to(tl.int64)[:, None] * D
        acc = _tile_dot(h_rows, w_rows, row_ok, col_ok, D, BLOCK_N, BLOCK_V, BLOCK_D, PRECISION, UPCAST)
        z = tl.where(col_ok[None, :], acc * inv_temp, float("-inf"))  # (BLOCK_N, BLOCK_V)
        zt += tl.sum(tl.where(cols[None, :] == tgt[:, None], z, 0.0), 1)
        m_new = tl.maximum(m, tl.max(z, 1))
        alpha = tl.exp(m - m_new)
        zs = z - m_new[:, None]  # -inf in padding columns
        e = tl.exp(zs)  # 0 in padding columns
        if ENTROPY:
            shift = tl.where(s0 > 0, m - m_new, 0.0)  # avoid -inf * 0 on the first block
            s1 = alpha * (s1 + shift * s0) + tl.sum(e * tl.where(col_ok[None, :], zs, 0.0), 1)
        s0 = alpha * s0 + tl.sum(e, 1)
        m = m_new
    out = rows * S + pid_s
    tl.store(m_ptr + out, m, mask=row_ok)
    tl.store(s0_ptr + out, s0, mask=row_ok)
    tl.store(s1_ptr + out, s1, mask=row_ok)
    tl.store(zt_ptr + out, zt, mask=row_ok)


@_jit
def _logprob_dlogits_kernel(h_ptr, w_ptr, t_ptr, m_ptr, logs0_ptr, g_ptr, d_ptr,
                            N, D, c0, width, d_stride, inv_temp,
                            BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr,
                            PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """One program: one (BLOCK_N, BLOCK_V) tile of the vocabulary chunk [c0, c0 + width). Recomputes z, forms
    d = g (onehot - p) / T in fp32 and stores it in the input dtype to the (N, width) chunk buffer."""
    pid_n = tl.program_id(0)
    pid_v = tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    cc = pid_v * BLOCK_V + tl.arange(0, BLOCK_V)  # column inside the chunk
    cols = c0 + cc  # vocabulary id
    row_ok = rows < N
    col_ok = cc < width
    tgt = tl.load(t_ptr + rows, mask=row_ok, other=-1)
    m = tl.load(m_ptr + rows, mask=row_ok, other=0.0)
    logs0 = tl.load(logs0_ptr + rows, mask=row_ok, other=0.0)
    g = tl.load(g_ptr + rows, mask=row_ok, other=0.0) * inv_temp
    h_rows = h_ptr + rows.to(tl.int64)[:, None] * D  # int64: V * D passes 2**31 for large heads
    w_rows = w_ptr + cols.to(tl.int64)[:, None] * D
    acc = _tile_dot(h_rows, w_rows, row_ok, col_ok, D, BLOCK_N, BLOCK_V, BLOCK_D, PRECISION, UPCAST)
    p = tl.exp((acc * inv_temp - m[:, None]) - logs0[:, None])  # (BLOCK_N, BLOCK_V), z tiled as in forward
    d = g[:, None] * (tl.where(cols[None, :] == tgt[:, None], 1.0, 0.0) - p)
    d_out = d_ptr + rows.to(tl.int64)[:, None] * d_stride + cc[None, :]
    tl.store(d_out, d.to(d_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


def _launch_config(dtype):
    """GPU: the classic 128 x 128 x 64 matmul tile for bf16/fp16 (64 x 128 x 32 for exact fp32 dots, which
    spill at the larger tile), 8 warps, 3 stages. Not tuned on a GPU (none was available). Compiled for sm_90a
    with the launch-time specialization (16-byte aligned pointers, D % 16 == 0), ptxas reports no register
    spills for any dtype (bf16: 194 and 127 registers, 96 KiB of shared memory; figures from triton 3.9's ptxas,
    checked by tests/test_logprobs.py) and the D loop is software-pipelined.
    Interpreter: small blocks, so that every test shape hits partial blocks in all three dimensions."""
    gpu = not INTERPRETED
    wide = gpu and dtype != torch.float32
    return dict(
        BLOCK_N=128 if wide else 64 if gpu else 16, BLOCK_V=128, BLOCK_D=64 if wide else 32,
        # exact fp32 dots for fp32 inputs (not TF32) and for the interpreter's upcast tiles; for bf16/fp16 tiles
        # the setting does not apply (Triton's tl.dot docs: it selects how f32 x f32 uses the tensor cores)
        PRECISION="ieee" if dtype == torch.float32 or not gpu else "tf32",
        UPCAST=not gpu and dtype != torch.float32,
        num_warps=8 if gpu else 1,
        num_stages=3 if gpu else 1,
    )


def _num_splits(n_row_blocks, n_vocab_blocks, device):
    """Vocabulary splits per row block: enough programs to fill the GPU (about 4 per SM), at most 64 so the
    partial buffers stay O(N), never empty. Interpreted, 3, so the tests exercise the merge."""
    if device.type == "cuda" and not INTERPRETED:
        want = math.ceil(4 * torch.cuda.get_device_properties(device).multi_processor_count / n_row_blocks)
    else:
        want = 3
    s = max(1, min(want, 64, n_vocab_blocks))
    per = math.ceil(n_vocab_blocks / s)
    return math.ceil(n_vocab_blocks / per), per


def _triton_forward(hidden, weight, targets, inv_temp, want_entropy):
    N, D = hidden.shape
    V = weight.shape[0]
    cfg = _launch_config(hidden.dtype)
    n_rb, n_vb = triton.cdiv(N, cfg["BLOCK_N"]), triton.cdiv(V, cfg["BLOCK_V"])
    if N == 0:
        z = hidden.new_zeros(0, dtype=torch.float32)
        return z, z.clone(), z.clone(), z.clone()
    S, per = _num_splits(n_rb, n_vb, hidden.device)
    m, s0, s1, zt = torch.empty(4, N, S, device=hidden.device, dtype=torch.float32)  # (N, S) each
    with _on_device(hidden.device):
        _logprob_fwd_kernel[(n_rb, S)](hidden, weight, targets, m, s0, s1, zt, N, V, D, inv_temp, per,
                                       ENTROPY=want_entropy, **cfg)
    # merge the S partials with the same rescaling rule as the online update (no split is empty)
    M = m.amax(1)  # (N,)
    a = torch.exp(m - M[:, None])  # (N, S)
    S0 = (a * s0).sum(1)  # (N,)
    logS0 = torch.log(S0)  # (N,)
    logp = (zt.sum(1) - M) - logS0  # (N,): only the split holding the target wrote a nonzero z_target
    if want_entropy:
        S1 = (a * (s1 + (m - M[:, None]) * s0)).sum(1)  # (N,)
        entropy = logS0 - S1 / S0  # (N,)
    else:
        entropy = torch.zeros_like(logp)
    return logp, entropy, M, logS0


def _dlogits_chunk(N, device):
    """Vocabulary entries per backward chunk: the (N, chunk) buffer holds at most 2**27 elements (256 MB in
    bf16) whatever V is, and stays wide enough for efficient matmuls. Interpreted, 3 blocks, so the tests
    run several chunks and a partial last one."""
    if INTERPRETED:
        return 3 * _launch_config(torch.float32)["BLOCK_V"]
    return max(1024, min(32768, (2 ** 27 // max(N, 1)) // 128 * 128))


def _triton_backward(hidden, weight, targets, m, logs0, grad_logp, inv_temp, need_h, need_w):
    """Per vocabulary chunk: the Triton kernel writes d (N, chunk), then two library matmuls (cuBLAS on a GPU)
    consume it: grad_h += d @ W[chunk] (each chunk's product kept in fp32 and summed in fp32: one rounding, at
    the end) and grad_W[chunk] = d^T @ h (complete in one product, so no fp32 (V, D) buffer is needed)."""
    N, D = hidden.shape
    V = weight.shape[0]
    grad_h = torch.zeros(N, D, device=hidden.device, dtype=torch.float32) if need_h else None  # (N, D)
    grad_w = torch.empty_like(weight) if need_w else None  # (V, D)
    if N == 0:
        return (grad_h.to(hidden.dtype) if need_h else None), (grad_w.zero_() if need_w else None)
    cfg = _launch_config(hidden.dtype)
    chunk = _dlogits_chunk(N, hidden.device)
    d_buf = torch.empty(N, min(chunk, V), device=hidden.device, dtype=hidden.dtype)  # (N, chunk)
    low_precision = hidden.dtype != torch.float32
    prod = torch.empty(N, D, device=hidden.device) if need_h and low_precision else None  # (N, D) fp32
    for c0 in range(0, V, chunk):
        width = min(chunk, V - c0)
        grid = (triton.cdiv(N, cfg["BLOCK_N"]), triton.cdiv(width, cfg["BLOCK_V"]))
        with _on_device(hidden.device):
            _logprob_dlogits_kernel[grid](hidden, weight, targets, m, logs0, grad_logp, d_buf,
                                          N, D, c0, width, d_buf.stride(0), inv_temp, **cfg)
        d = d_buf[:, :width]  # (N, width)
        w = weight[c0:c0 + width]  # (width, D)
        if need_h and not low_precision:
            grad_h.addmm_(d, w)
        elif need_h:
            grad_h += _mm_fp32(d, w, out=prod)  # (N, D)
        if need_w:
            torch.mm(d.T, hidden, out=grad_w[c0:c0 + width])  # a contiguous row slice: written in place
    return (grad_h.to(hidden.dtype) if need_h else None), grad_w


_MM_OUT_DTYPE = torch.__version__ >= "2.8"  # torch.mm(a, b, out_dtype=torch.float32) for fp16/bf16 on CUDA


def _mm_fp32(a, b, out):
    """a @ b in fp32 for bf16/fp16 a and b, never rounded to their dtype: on CUDA one cuBLAS matmul that writes
    its fp32 accumulator (torch >= 2.8's `out_dtype`); elsewhere (the interpreter's CPU tensors, older torch) the
    operands go to fp32 first, which gives the same products (exact in fp32), only slower."""
    if a.is_cuda and _MM_OUT_DTYPE:
        return torch.mm(a, b, out_dtype=torch.float32, out=out)
    return torch.mm(a.float(), b.float(), out=out)


def _on_device(device):
    """Triton launches on the current CUDA device; make it the tensors' one."""
    return torch.cuda.device(device) if device.type == "cuda" and not INTERPRETED else contextlib.nullcontext()
