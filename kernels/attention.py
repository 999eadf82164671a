"""Attention mass per key segment, computed flash-style without ever forming the (Tq x Tk) probabilities.

For every query and head, `attention_mass` returns how much softmax attention probability falls on the keys of each
segment (e.g. chat template / task text / constraint text / response):

    mass[b, h, i, s] = sum_{j : segment_ids[b, j] == s} softmax_j(scale * q[b, h, i] . k[b, h // G, j] + mask)

Why a kernel: eager attention with `output_attentions=True` materializes B*H*Tq*Tk probabilities per layer
(at T = 4k, 28 heads, fp32: 1.9 GB per layer), while the answer is only B*H*Tq*S numbers. Like FlashAttention
(Dao et al. 2022, arXiv 2205.14135) we stream key blocks through an online softmax (Milakov & Gimelshein 2018,
arXiv 1805.02867), keeping per query a running max m and, instead of the output accumulator sum_j p_j v_j, a
per-segment accumulator sum_j p_j onehot(seg_j): the one-hot segment matrix plays the role of V. Each visible key
is in exactly one segment, so the softmax normalizer is the accumulator's sum over segments and needs no running
sum of its own. Memory is O(B*H*Tq*S) plus one tile, and the result is exact (no sampling, no approximation).

Conventions: `q` (B, H, Tq, d) and `k` (B, Hkv, Tk, d) are post-RoPE; query head h reads key head h // (H // Hkv)
(grouped-query attention, as `repeat_interleave`). `segment_ids` (B, Tk) holds values in [0, S) and -1 for padding
keys, which get no probability. With `causal`, query i sits at key position Tk - Tq + i, so passing only the last
Tq queries of a sequence (e.g. the response) gives their exact mass. A query with no visible key gets mass 0.

Backends (the `backend` argument, else env MINIRLVR_ATTENTION_BACKEND, else "triton" on CUDA when triton is
installed and not interpreting, and "blockwise" elsewhere):
    "triton"     the fused kernel below; on CPU tensors only under Triton's interpreter (TRITON_INTERPRET set
                 before triton is imported, as the tests do; kernels/triton_env.py holds the rule both kernel
                 files use). bf16/fp16 inputs multiply on tensor cores with fp32 accumulation; fp32 inputs stay
                 exact fp32 ("ieee" dots, not TF32 or bf16) on smaller tiles chosen so that nothing spills
                 (`_launch_config`)
    "blockwise"  the same online softmax in PyTorch, one (query chunk x key block) tile at a time: the CPU path
    "reference"  full softmax, (Tq x Tk) memory: the specification and the test oracle

Deliberately not here: values, the attention output, gradients (this is analysis), sliding windows, softcapping,
ALiBi or other score biases.
"""

import math
import os

import torch

from minirlvr.kernels.triton_env import INTERPRETED, check_triton_device, jit, tl, triton

BACKENDS = ("triton", "blockwise", "reference")


def check_inputs(q, k, segment_ids, num_segments, causal=True):
    """Raise ValueError naming the offending argument; returns (B, H, Hkv, Tq, Tk, d)."""
    if not isinstance(q, torch.Tensor) or q.dim() != 4:
        raise ValueError(f"q: expected a tensor of shape (B, H, Tq, d), got {_shape(q)}")
    if not isinstance(k, torch.Tensor) or k.dim() != 4:
        raise ValueError(f"k: expected a tensor of shape (B, Hkv, Tk, d), got {_shape(k)}")
    B, H, Tq, d = q.shape
    Bk, Hkv, Tk, dk = k.shape
    if Bk != B:
        raise ValueError(f"k: batch size {Bk} does not match q's {B}")
    if dk != d:
        raise ValueError(f"k: head dim {dk} does not match q's {d}")
    if k.dtype != q.dtype:
        raise ValueError(f"k: dtype {k.dtype} does not match q's {q.dtype}")
    if k.device != q.device:
        raise ValueError(f"k: device {k.device} does not match q's {q.device}")
    if Hkv == 0 or H % Hkv != 0:
        raise ValueError(f"k: q's {H} heads are not a multiple of k's {Hkv} key/value heads")
    if not isinstance(num_segments, int) or isinstance(num_segments, bool) or num_segments < 1:
        raise ValueError(f"num_segments: expected a positive int, got {num_segments!r}")
    if not isinstance(segment_ids, torch.Tensor) or tuple(segment_ids.shape) != (B, Tk):
        raise ValueError(f"segment_ids: expected shape (B, Tk) = ({B}, {Tk}), got {_shape(segment_ids)}")
    if segment_ids.dtype.is_floating_point or segment_ids.dtype.is_complex or segment_ids.dtype == torch.bool:
        raise ValueError(f"segment_ids: expected an integer tensor, got {segment_ids.dtype}")
    if segment_ids.device != q.device:
        raise ValueError(f"segment_ids: device {segment_ids.device} does not match q's {q.device}")
    if segment_ids.numel() and (segment_ids.min() < -1 or segment_ids.max() >= num_segments):
        lo, hi = int(segment_ids.min()), int(segment_ids.max())
        raise ValueError(f"segment_ids: values must be in [-1, num_segments={num_segments}), got [{lo}, {hi}]")
    if causal and Tq > Tk:
        raise ValueError(f"q: with causal=True, query length Tq={Tq} cannot exceed key length Tk={Tk}")
    return B, H, Hkv, Tq, Tk, d


def _shape(x):
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


def attention_mass_reference(q, k, segment_ids, num_segments, causal=True, scale=None):
    """q (B, H, Tq, d), k (B, Hkv, Tk, d), segment_ids (B, Tk) -> mass (B, H, Tq, S) fp32, via full softmax."""
    B, H, Hkv, Tq, Tk, d = check_inputs(q, k, segment_ids, num_segments, causal)
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    k = k.repeat_interleave(H // Hkv, dim=1)  # (B, H, Tk, d)
    scores = (q.float() @ k.float().transpose(-1, -2)) * scale  # (B, H, Tq, Tk)
    valid = (segment_ids >= 0)[:, None, None, :]  # (B, 1, 1, Tk)
    if causal:
        qpos = torch.arange(Tq, device=q.device)[:, None] + (Tk - Tq)  # (Tq, 1)
        valid = valid & (torch.arange(Tk, device=q.device)[None, :] <= qpos)  # (B, 1, Tq, Tk)
    probs = torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=-1)  # (B, H, Tq, Tk)
    onehot = torch.nn.functional.one_hot(segment_ids.clamp(min=0).long(), num_segments).float()  # (B, Tk, S)
    onehot = onehot * (segment_ids >= 0)[..., None]  # (B, Tk, S)
    return torch.einsum("bhqk,bks->bhqs", probs.nan_to_num(0.0), onehot)  # (B, H, Tq, S)


def _attention_mass_blockwise(q, k, segment_ids, num_segments, causal, scale, block_m=128, block_n=128):
    """The kernel's algorithm in PyTorch, tile by tile: (block_m queries x G heads) x block_n keys at a time, causal
    tiles above the diagonal skipped. Inputs are checked."""
    (B, H, Tq, d), (Hkv, Tk) = q.shape, k.shape[1:3]
    G = H // Hkv
    # Query head h = hkv * G + g reads key head hkv, so the G query heads of a group become extra rows: no repeat of k.
    qg = q.reshape(B, Hkv, G, Tq, d)  # (B, Hkv, G, Tq, d)
    out = torch.empty(B, Hkv, G, Tq, num_segments, device=q.device)  # (B, Hkv, G, Tq, S)
    onehot = torch.nn.functional.one_hot(segment_ids.clamp(min=0).long(), num_segments).float()  # (B, Tk, S)
    onehot = onehot * (segment_ids >= 0)[..., None]  # padding keys belong to no segment
    has_pad = bool((segment_ids < 0).any())
    for m0 in range(0, Tq, block_m):
        bm = min(block_m, Tq - m0)
        qc = qg[:, :, :, m0:m0 + bm].float().reshape(B, Hkv, G * bm, d) * scale  # (B, Hkv, G*bm, d)
        qpos = torch.arange(m0, m0 + bm, device=q.device).repeat(G) + (Tk - Tq)  # (G*bm,) key position of each row
        hi = min(Tk, Tk - Tq + m0 + bm) if causal else Tk  # later keys are invisible to this chunk
        m = torch.full((B, Hkv, G * bm), float("-inf"), device=q.device)  # running max
        acc = torch.zeros(B, Hkv, G * bm, num_segments, device=q.device)  # running unnormalized mass
        for n0 in range(0, hi, block_n):
            n1 = min(n0 + block_n, Tk)
            s = qc @ k[:, :, n0:n1].float().transpose(-1, -2)  # (B, Hkv, G*bm, BN)
            if has_pad:
                s.masked_fill_((segment_ids[:, n0:n1] < 0)[:, None, None, :], float("-inf"))
            if causal and n1 - 1 > Tk - Tq + m0:  # the tile crosses the diagonal
                s.masked_fill_(torch.arange(n0, n1, device=q.device)[None, :] > qpos[:, None], float("-inf"))
            m_new = torch.maximum(m, s.amax(-1))  # (B, Hkv, G*bm)
            m_safe = m_new.masked_fill(m_new == float("-inf"), 0.0)  # no visible key yet: keep exp() finite
            p = s.sub_(m_safe[..., None]).exp_()  # (B, Hkv, G*bm, BN) in place of s, 0 on masked keys
            alpha = torch.exp(m - m_safe)  # (B, Hkv, G*bm): rescales what was summed under the old max
            acc = acc.mul_(alpha[..., None]).add_(p @ onehot[:, None, n0:n1])  # (B, Hkv, G*bm, S)
            m = m_new
        # Every visible key is in exactly one segment, so the softmax normalizer is the sum over segments.
        total = acc.sum(-1, keepdim=True)  # (B, Hkv, G*bm, 1)
        mass = acc / torch.where(total > 0, total, 1.0)  # no visible key -> 0
        out[:, :, :, m0:m0 + bm] = mass.reshape(B, Hkv, G, bm, num_segments)
    return out.reshape(B, H, Tq, num_segments)  # (B, H, Tq, S)


@jit
def _attention_mass_kernel(
    q_ptr, k_ptr, seg_ptr, out_ptr,
    stride_qb, stride_qh, stride_qt, stride_qd,
    stride_kb, stride_kh, stride_kt, stride_kd,
    stride_sb, stride_st,
    stride_ob, stride_oh, stride_ot, stride_os,
    H, Tq, Tk, D, S, qk_scale,
    GROUP: tl.constexpr, CAUSAL: tl.constexpr, QK_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_S: tl.constexpr,
):
    # One program: BLOCK_M queries of one (batch, head), streaming all visible key blocks.
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)  # 64-bit offsets: B*H*T*d can pass 2**31 on long batched inputs
    h = (pid_bh % H).to(tl.int64)
    hk = h // GROUP
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    offs_s = tl.arange(0, BLOCK_S)
    q = tl.load(
        q_ptr + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qt + offs_d[None, :] * stride_qd,
        mask=(offs_m[:, None] < Tq) & (offs_d[None, :] < D), other=0.0,
    )  # (BLOCK_M, BLOCK_D)
    if UPCAST:
        q = q.to(tl.float32)
    qpos = offs_m + (Tk - Tq)  # key position of each query under the causal convention
    # A finite "minus infinity": masked scores are zeroed explicitly, and exp2(NEG - NEG) stays finite.
    m_i = tl.full([BLOCK_M], -1.0e30, tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_S], tl.float32)
    hi = Tk
    if CAUSAL:
        hi = tl.minimum(Tk, (Tk - Tq) + (pid_m + 1) * BLOCK_M)  # later keys are invisible to this query block
    for n0 in range(0, hi, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        kt = tl.load(
            k_ptr + b * stride_kb + hk * stride_kh + offs_n[None, :] * stride_kt + offs_d[:, None] * stride_kd,
            mask=(offs_n[None, :] < Tk) & (offs_d[:, None] < D), other=0.0,
        )  # (BLOCK_D, BLOCK_N)
        if UPCAST:
            kt = kt.to(tl.float32)
        seg = tl.load(seg_ptr + b * stride_sb + offs_n * stride_st, mask=offs_n < Tk, other=-1)  # (BLOCK_N,)
        # Scores in log2 units (scale * log2 e folded into qk_scale) so the exponentials are exp2.
        s = tl.dot(q, kt, input_precision=QK_PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N)
        valid = (seg >= 0)[None, :]
        if CAUSAL:
            valid = valid & (offs_n[None, :] <= qpos[:, None])
        s = tl.where(valid, s, -1.0e30)
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.math.exp2(m_i - m_new)
        p = tl.where(valid, tl.math.exp2(s - m_new[:, None]), 0.0)  # (BLOCK_M, BLOCK_N)
        onehot = (seg[:, None] == offs_s[None, :]).to(tl.float32)  # (BLOCK_N, BLOCK_S): plays the role of V
        # fp32 "ieee" dot: tf32 would round p to 10 mantissa bits and break the exactness the tests check.
        acc = acc * alpha[:, None] + tl.dot(p, onehot, input_precision="ieee")  # (BLOCK_M, BLOCK_S)
        m_i = m_new
    # Every visible key is in exactly one segment, so the softmax normalizer is the sum over segments.
    total = tl.sum(acc, 1)
    mass = acc / tl.where(total > 0, total, 1.0)[:, None]
    tl.store(
        out_ptr + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_ot + offs_s[None, :] * stride_os,
        mass, mask=(offs_m[:, None] < Tq) & (offs_s[None, :] < S),
    )


def _launch_config(dtype, block_m=None, block_n=None):
    """Tile sizes and launch options; block_m / block_n override the tiles (the tests use small ones).

    bf16/fp16: 64 queries x 64 keys, 4 warps, 3 stages; the QK dot runs on tensor cores.
    fp32: exact "ieee" dots run on the CUDA cores, and at 64 x 64 they spilled (ptxas for sm_90a, triton 3.9:
    a 224-byte stack frame per thread at d = 64, 6.5 KiB at d = 128, 16 KiB at d = 256, where the tiles also took
    213 of the 227 KiB of shared memory). 32 x 32 tiles with 4 warps and 2 stages spill nothing (70-72 registers,
    22-70 KiB of shared memory for d = 64-256): fp32 inputs keep fp32 numbers on smaller tiles rather than being
    rounded to bf16. tests/test_attention_kernel.py compiles every dtype for sm_90 and checks these figures.
    Interpreter: 64 x 64, one warp, one stage (no GPU to fit)."""
    exact = dtype == torch.float32 and not INTERPRETED
    tile = 32 if exact else 64
    return dict(BLOCK_M=block_m or tile, BLOCK_N=block_n or tile, num_warps=4 if not INTERPRETED else 1,
                num_stages=1 if INTERPRETED else 2 if exact else 3)


def _attention_mass_triton(q, k, segment_ids, num_segments, causal, scale, block_m=None, block_n=None):
    """Launch the kernel: one program per (query block, batch * head). Inputs are checked."""
    (B, H, Tq, d), (Hkv, Tk) = q.shape, k.shape[1:3]
    check_triton_device(q.device, fallback="blockwise")
    seg = segment_ids.to(torch.int32)  # (B, Tk)
    out = torch.empty(B, H, Tq, num_segments, device=q.device, dtype=torch.float32)  # (B, H, Tq, S)
    if out.numel() == 0:
        return out.zero_()
    # tl.dot needs every dimension >= 16 and a power of two; padded lanes are masked to zero.
    block_d = max(16, triton.next_power_of_2(d))
    block_s = max(16, triton.next_power_of_2(num_segments))
    # Triton's interpreter multiplies bf16 bit patterns in tl.dot (triton-lang/triton#11584), so there the operands
    # go to fp32 first: the same numbers, as bf16 products are exact in fp32 and the tensor-core dot sums in fp32.
    upcast = INTERPRETED and q.dtype == torch.bfloat16
    qk_precision = "ieee" if q.dtype == torch.float32 or upcast else "tf32"  # bf16/fp16: native tensor-core dot
    cfg = _launch_config(q.dtype, block_m, block_n)
    grid = (triton.cdiv(Tq, cfg["BLOCK_M"]), B * H)
    _attention_mass_kernel[grid](
        q, k, seg, out,
        *q.stride(), *k.stride(), *seg.stride(), *out.stride(),
        H, Tq, Tk, d, num_segments, scale * math.log2(math.e),
        GROUP=H // Hkv, CAUSAL=bool(causal), QK_PRECISION=qk_precision, UPCAST=upcast,
        BLOCK_D=block_d, BLOCK_S=block_s, **cfg,
    )
    return out


def resolve_backend(backend, device):
    """The backend name that `attention_mass` will use for tensors on `device`."""
    compiled_gpu = torch.device(device).type == "cuda" and triton is not None and not INTERPRETED
    backend = backend or os.environ.get("MINIRLVR_ATTENTION_BACKEND") or ("triton" if compiled_gpu else "blockwise")
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS} (argument or MINIRLVR_ATTENTION_BACKEND), "
                         f"got {backend!r}")
    return backend


@torch.no_grad()
def attention_mass(q, k, segment_ids, num_segments, causal=True, scale=None, backend=None):
    """q (B, H, Tq, d), k (B, Hkv, Tk, d), segment_ids (B, Tk) int in [-1, S) -> mass (B, H, Tq, S) fp32.

    Each row sums to 1 over segments (0 for a query that sees no key). Forward only: no gradient flows.
    """
    name = resolve_backend(backend, q.device if isinstance(q, torch.Tensor) else "cpu")
    if name == "reference":
        return attention_mass_reference(q, k, segment_ids, num_segments, causal, scale)
    d = check_inputs(q, k, segment_ids, num_segments, causal)[-1]
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    if name == "triton":
        return _attention_mass_triton(q, k, segment_ids, num_segments, causal, scale)
    return _attention_mass_blockwise(q, k, segment_ids, num_segments, causal, scale)
