"""attention_mass: the Triton kernel (interpreted on CPU) and the blockwise PyTorch path against the full-softmax
reference, on odd shapes; rows sum to 1; bad input names the argument. The compiled kernel is checked only on CUDA."""

import os
import subprocess
import sys

import pytest
import torch

from minirlvr.kernels import attention as A

# (B, H, Hkv, Tq, Tk, d, S): Tq != Tk, Tk not a multiple of the 16-wide test blocks, GQA and MQA, d not a power of 2
SHAPES = [
    (2, 4, 2, 13, 37, 24, 3),
    (1, 3, 3, 20, 20, 16, 4),
    (2, 6, 1, 1, 19, 8, 2),
]
DTYPES = [torch.float32, torch.bfloat16]
# Triton runs on these CPU tensors only under its interpreter (tests/conftest.py turns it on); a GPU run with
# TRITON_INTERPRET=0 checks the compiled kernel in test_compiled_kernel_on_cuda instead.
needs_interpreter = pytest.mark.skipif(not A._INTERPRETED, reason="Triton on CPU tensors needs TRITON_INTERPRET=1")
TRITON = pytest.param("triton", marks=needs_interpreter)
# Inputs are identical for kernel and reference (the reference upcasts the same bf16 numbers), so both dtypes
# agree to fp32 rounding of the sums.
ATOL = 2e-6


def make_inputs(B, H, Hkv, Tq, Tk, d, S, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = (2.0 * torch.randn(B, H, Tq, d, generator=g)).to(dtype)  # (B, H, Tq, d): peaky enough to be informative
    k = torch.randn(B, Hkv, Tk, d, generator=g).to(dtype)  # (B, Hkv, Tk, d)
    # Segment S-1 never occurs (a segment with no keys); the first key of batch 0 is left padding, and a few
    # scattered keys are padding too.
    seg = torch.randint(0, max(S - 1, 1), (B, Tk), generator=g)  # (B, Tk)
    seg[0, 0] = -1
    seg[:, Tk // 2] = -1
    return q, k, seg


def run_backend(backend, q, k, seg, S, causal):
    scale = q.shape[-1] ** -0.5
    if backend == "triton":
        return A._attention_mass_triton(q, k, seg, S, causal, scale, block_m=16, block_n=16)
    return A._attention_mass_blockwise(q, k, seg, S, causal, scale, block_m=8, block_n=16)


@pytest.mark.parametrize("backend", [TRITON, "blockwise"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_reference(backend, dtype, causal, shape):
    B, H, Hkv, Tq, Tk, d, S = shape
    q, k, seg = make_inputs(*shape, dtype)
    ref = A.attention_mass_reference(q, k, seg, S, causal)  # (B, H, Tq, S)
    out = run_backend(backend, q, k, seg, S, causal)
    assert out.shape == (B, H, Tq, S) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)
    assert (out[..., S - 1] == 0).all()  # the empty segment gets nothing
    # Every query that sees at least one key distributes exactly its whole probability over the segments.
    visible = (seg >= 0)[:, None, None, :].expand(B, 1, Tq, Tk)  # (B, 1, Tq, Tk)
    if causal:
        visible = visible & (torch.arange(Tk)[None, :] <= torch.arange(Tq)[:, None] + Tk - Tq)
    has_key = visible.any(-1).expand(B, H, Tq)  # (B, H, Tq)
    total = out.sum(-1)  # (B, H, Tq)
    torch.testing.assert_close(total[has_key], torch.ones_like(total[has_key]), atol=1e-5, rtol=0)
    assert (total[~has_key] == 0).all()


@pytest.mark.parametrize("backend", [TRITON, "blockwise", "reference"])
def test_public_api_default_blocks_and_fully_masked_row(backend):
    # Default block sizes, Tk = 150 spans three 64-key blocks; with causal left padding of 3, the first 3 queries
    # of batch 1 see no key at all and must get mass 0, not NaN.
    B, H, Hkv, Tq, Tk, d, S = 2, 2, 1, 70, 150, 32, 3
    q, k, seg = make_inputs(B, H, Hkv, Tq, Tk, d, S, torch.float32, seed=1)
    seg[1, :Tk - Tq + 3] = -1
    out = A.attention_mass(q, k, seg, S, causal=True, backend=backend)
    ref = A.attention_mass_reference(q, k, seg, S, causal=True)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)
    assert not out.isnan().any()
    assert (out[1, :, :3] == 0).all() and (out[1, :, 3:].sum(-1) - 1).abs().max() < 1e-5


@pytest.mark.parametrize("backend", [TRITON, "blockwise"])
def test_last_queries_convention(backend):
    # With causal, query i sits at key position Tk - Tq + i: the last 5 queries alone give the last 5 rows.
    B, H, Hkv, T, d, S = 1, 2, 2, 23, 16, 3
    q, k, seg = make_inputs(B, H, Hkv, T, T, d, S, torch.float32, seed=2)
    full = run_backend(backend, q, k, seg, S, True)  # (B, H, T, S)
    tail = run_backend(backend, q[:, :, -5:].contiguous(), k, seg, S, True)  # (B, H, 5, S)
    torch.testing.assert_close(tail, full[:, :, -5:], atol=ATOL, rtol=0)


@needs_interpreter
def test_noncontiguous_inputs():
    # The hook passes views (transposed projections); strides must be honoured.
    B, H, Hkv, T, d, S = 1, 4, 2, 18, 16, 2
    q, k, seg = make_inputs(B, H, Hkv, T, T, d, S, torch.float32, seed=3)
    qt = q.transpose(1, 2).contiguous().transpose(1, 2)  # same values, (B, T, H, d) memory layout
    kt = k.transpose(1, 2).contiguous().transpose(1, 2)
    assert not qt.is_contiguous()
    out = A._attention_mass_triton(qt, kt, seg, S, True, d ** -0.5, block_m=16, block_n=16)
    torch.testing.assert_close(out, A.attention_mass_reference(q, k, seg, S), atol=ATOL, rtol=0)


def _good():
    return make_inputs(2, 4, 2, 5, 7, 8, 3, torch.float32)


@pytest.mark.parametrize("backend", [TRITON, "blockwise", "reference"])
@pytest.mark.parametrize("mutate, argument", [
    (lambda q, k, s: (q[0], k, s, 3), "q"),
    (lambda q, k, s: (q, k[:1], s, 3), "k"),  # batch mismatch
    (lambda q, k, s: (q, k[..., :4], s, 3), "k"),  # head dim mismatch
    (lambda q, k, s: (q[:, :3], k, s, 3), "k"),  # 3 query heads over 2 kv heads
    (lambda q, k, s: (q, k, s[:, :6], 3), "segment_ids"),  # length mismatch
    (lambda q, k, s: (q, k, s.float(), 3), "segment_ids"),
    (lambda q, k, s: (q, k, s.clone().fill_(3), 3), "segment_ids"),  # out of range above
    (lambda q, k, s: (q, k, s.clone().fill_(-2), 3), "segment_ids"),  # out of range below
    (lambda q, k, s: (q, k, s, 0), "num_segments"),
    (lambda q, k, s: (q, k.bfloat16(), s, 3), "k"),  # dtype mismatch
], ids=["q-rank", "k-batch", "k-dim", "gqa-groups", "seg-shape", "seg-float", "seg-high", "seg-low", "S-zero",
        "k-dtype"])
def test_bad_input_names_the_argument(backend, mutate, argument):
    args = mutate(*_good())
    with pytest.raises(ValueError, match=rf"^{argument}:"):
        A.attention_mass(*args, backend=backend)


def test_causal_query_longer_than_keys_is_rejected():
    q, k, seg = _good()
    with pytest.raises(ValueError, match=r"^q:.*Tq=5.*Tk=3"):
        A.attention_mass(q, k[:, :, :3], seg[:, :3], 3, causal=True)
    A.attention_mass(q, k[:, :, :3], seg[:, :3], 3, causal=False)  # fine without causal


def test_backend_choice(monkeypatch):
    monkeypatch.delenv("MINIRLVR_ATTENTION_BACKEND", raising=False)
    assert A.resolve_backend(None, "cpu") == "blockwise"
    assert A.resolve_backend(None, "cuda") == "triton"
    monkeypatch.setenv("MINIRLVR_ATTENTION_BACKEND", "reference")
    assert A.resolve_backend(None, "cpu") == "reference"
    assert A.resolve_backend("triton", "cpu") == "triton"  # the argument wins over the environment
    monkeypatch.setenv("MINIRLVR_ATTENTION_BACKEND", "flash")
    with pytest.raises(ValueError, match="^backend:.*'flash'"):
        A.attention_mass(*_good(), 3)


CUDA_CHECK = r"""
import torch
from minirlvr.kernels import attention as A
assert not A._INTERPRETED
torch.manual_seed(0)
for dtype in (torch.float32, torch.bfloat16):
    for causal in (True, False):
        B, H, Hkv, Tq, Tk, d, S = 2, 8, 2, 300, 517, 128, 4
        q = (2 * torch.randn(B, H, Tq, d, device="cuda")).to(dtype)
        k = torch.randn(B, Hkv, Tk, d, device="cuda").to(dtype)
        seg = torch.randint(-1, S - 1, (B, Tk), device="cuda")
        out = A.attention_mass(q, k, seg, S, causal=causal, backend="triton")
        ref = A.attention_mass_reference(q, k, seg, S, causal=causal)
        torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
print("ok")
"""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compiled Triton kernel needs CUDA")
def test_compiled_kernel_on_cuda():
    # A fresh interpreter without TRITON_INTERPRET, since conftest turns the interpreter on for this process.
    env = {key: v for key, v in os.environ.items() if key != "TRITON_INTERPRET"}
    res = subprocess.run([sys.executable, "-c", CUDA_CHECK], env=env, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-3000:]
