"""attention_mass: the Triton kernel and the blockwise PyTorch path against the full-softmax reference, on odd
shapes; rows sum to 1; bad input names the argument; every dtype compiles for sm_90 without spilling.

The Triton cases run interpreted on CPU tensors when TRITON_INTERPRET=1 was set before triton was imported
(tests/conftest.py does), compiled on CUDA tensors otherwise (`TRITON_INTERPRET=0 pytest tests/test_attention_kernel.py`
on a GPU machine, as .ci/gpu_check does), and skip with a reason when neither is possible.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

from minirlvr.kernels import attention as A
from minirlvr.kernels import triton_env

# (B, H, Hkv, Tq, Tk, d, S): Tq != Tk, Tk not a multiple of the 16-wide test blocks, GQA and MQA, d not a power of 2
SHAPES = [
    (2, 4, 2, 13, 37, 24, 3),
    (1, 3, 3, 20, 20, 16, 4),
    (2, 6, 1, 1, 19, 8, 2),
]
DTYPES = [torch.float32, torch.bfloat16]
TRITON_DEVICE, MODE = triton_env.kernel_device()  # ("cpu", "interpreted"), ("cuda", "compiled") or (None, why)
TRITON = pytest.param("triton", id=f"triton-{MODE}", marks=() if TRITON_DEVICE else pytest.mark.skip(reason=MODE))
# Inputs are identical for kernel and reference (the reference upcasts the same bf16 numbers), so both dtypes
# agree to fp32 rounding of the sums.
ATOL = 2e-6


def device_of(backend):
    return TRITON_DEVICE if backend == "triton" and TRITON_DEVICE else "cpu"


def make_inputs(B, H, Hkv, Tq, Tk, d, S, dtype, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    q = (2.0 * torch.randn(B, H, Tq, d, generator=g)).to(dtype)  # (B, H, Tq, d): peaky enough to be informative
    k = torch.randn(B, Hkv, Tk, d, generator=g).to(dtype)  # (B, Hkv, Tk, d)
    # Segment S-1 never occurs (a segment with no keys); the first key of batch 0 is left padding, and a few
    # scattered keys are padding too.
    seg = torch.randint(0, max(S - 1, 1), (B, Tk), generator=g)  # (B, Tk)
    seg[0, 0] = -1
    seg[:, Tk // 2] = -1
    return q.to(device), k.to(device), seg.to(device)


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
    q, k, seg = make_inputs(*shape, dtype, device=device_of(backend))
    ref = A.attention_mass_reference(q, k, seg, S, causal)  # (B, H, Tq, S)
    out = run_backend(backend, q, k, seg, S, causal)
    assert out.shape == (B, H, Tq, S) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)
    assert (out[..., S - 1] == 0).all()  # the empty segment gets nothing
    # Every query that sees at least one key distributes exactly its whole probability over the segments.
    visible = (seg >= 0)[:, None, None, :].expand(B, 1, Tq, Tk)  # (B, 1, Tq, Tk)
    if causal:
        pos = torch.arange(Tk, device=seg.device)[None, :] - torch.arange(Tq, device=seg.device)[:, None]  # (Tq, Tk)
        visible = visible & (pos <= Tk - Tq)
    has_key = visible.any(-1).expand(B, H, Tq)  # (B, H, Tq)
    total = out.sum(-1)  # (B, H, Tq)
    torch.testing.assert_close(total[has_key], torch.ones_like(total[has_key]), atol=1e-5, rtol=0)
    assert (total[~has_key] == 0).all()


@pytest.mark.parametrize("backend", [TRITON, "blockwise", "reference"])
def test_public_api_default_blocks_and_fully_masked_row(backend):
    # Default block sizes (64 or 32 keys), so Tk = 150 spans several key blocks and a partial one; with causal
    # left padding of 3, the first 3 queries of batch 1 see no key at all and must get mass 0, not NaN.
    B, H, Hkv, Tq, Tk, d, S = 2, 2, 1, 70, 150, 32, 3
    q, k, seg = make_inputs(B, H, Hkv, Tq, Tk, d, S, torch.float32, seed=1, device=device_of(backend))
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
    q, k, seg = make_inputs(B, H, Hkv, T, T, d, S, torch.float32, seed=2, device=device_of(backend))
    full = run_backend(backend, q, k, seg, S, True)  # (B, H, T, S)
    tail = run_backend(backend, q[:, :, -5:].contiguous(), k, seg, S, True)  # (B, H, 5, S)
    torch.testing.assert_close(tail, full[:, :, -5:], atol=ATOL, rtol=0)


@pytest.mark.parametrize("backend", [TRITON, "blockwise"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_noncontiguous_inputs(backend, dtype):
    # The hook passes views (transposed projections); strides must be honoured.
    B, H, Hkv, T, d, S = 1, 4, 2, 18, 16, 2
    q, k, seg = make_inputs(B, H, Hkv, T, T, d, S, dtype, seed=3, device=device_of(backend))
    qt = q.transpose(1, 2).contiguous().transpose(1, 2)  # same values, (B, T, H, d) memory layout
    kt = k.transpose(1, 2).contiguous().transpose(1, 2)
    assert not qt.is_contiguous()
    out = run_backend(backend, qt, kt, seg, S, True)
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
    monkeypatch.setattr(A, "INTERPRETED", False)  # as on a GPU machine
    assert A.resolve_backend(None, "cpu") == "blockwise"
    assert A.resolve_backend(None, "cuda") == "triton"
    monkeypatch.setattr(A, "INTERPRETED", True)  # interpreted kernels are for tests, never a default
    assert A.resolve_backend(None, "cuda") == "blockwise"
    monkeypatch.setattr(A, "INTERPRETED", False)
    monkeypatch.setenv("MINIRLVR_ATTENTION_BACKEND", "reference")
    assert A.resolve_backend(None, "cpu") == "reference"
    assert A.resolve_backend("triton", "cpu") == "triton"  # the argument wins over the environment
    monkeypatch.setenv("MINIRLVR_ATTENTION_BACKEND", "flash")
    with pytest.raises(ValueError, match="^backend:.*'flash'"):
        A.attention_mass(*_good(), 3)


CUDA_CHECK = r"""
import torch
from minirlvr.kernels import attention as A, triton_env
assert not triton_env.INTERPRETED
torch.manual_seed(0)
for dtype in (torch.float32, torch.bfloat16, torch.float16):
    for d in (128, 256):
        for causal in (True, False):
            B, H, Hkv, Tq, Tk, S = 2, 8, 2, 300, 517, 4
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
    # The shipped tiles (default block sizes, d = 128 and 256, every dtype) in a fresh process without
    # TRITON_INTERPRET, since conftest turns the interpreter on for this process.
    env = {key: v for key, v in os.environ.items() if key != "TRITON_INTERPRET"}
    res = subprocess.run([sys.executable, "-c", CUDA_CHECK], env=env, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-3000:]


@pytest.mark.skipif(triton_env.triton is None, reason="triton not importable")
def test_kernel_compiles_for_sm90_without_spills():
    # fp32 tiles spilled 6-16 KB per thread at 64 x 64 (kernels/attention.py's _launch_config): every dtype at
    # head dims 128 and 256 must compile for sm_90a with no spills and fit in shared memory
    from minirlvr.kernels.compile_check import SM90_SHARED_LIMIT, figures_sm90

    rows = [r for r in figures_sm90() if r["variant"].startswith("attention ")]
    assert {r["variant"] for r in rows} == {f"attention d={d} {dt}" for d in (128, 256)
                                            for dt in ("bf16", "fp16", "fp32")}
    for r in rows:
        assert (r["spill_stores"], r["spill_loads"]) == (0, 0), r
        assert 0 < r["shared"] <= SM90_SHARED_LIMIT, r


RULE_CHECK = r"""
import json, sys
import torch
if sys.argv[1] == "no-triton":
    sys.modules["triton"] = None  # `import triton` raises ImportError, as on a CPU-only install
from minirlvr.kernels import attention as A, logprobs as lp, triton_env
q, k, seg = torch.randn(1, 2, 5, 16), torch.randn(1, 1, 5, 16), torch.zeros(1, 5, dtype=torch.long)
h, w, t = torch.randn(3, 16), torch.randn(40, 16), torch.tensor([0, 7, 39])
result = dict(interpreted=triton_env.INTERPRETED, triton=triton_env.triton is not None,
              defaults=[A.resolve_backend(None, "cuda"), lp.default_backend("cuda")])
for name, call in (("attention", lambda: A.attention_mass(q, k, seg, 2, backend="triton")),
                   ("logprobs", lambda: lp.token_logprobs(h, w, t, backend="triton"))):
    try:
        call()
        result[name] = "ran"
    except ValueError as e:
        result[name] = str(e)
result["blockwise"] = float(A.attention_mass(q, k, seg, 2).sum())  # the CPU default works in every mode
print(json.dumps(result))
"""


def test_one_interpreter_rule_for_both_kernel_files(tmp_path):
    # Triton takes "true", "on", "yes"... as well as "1" for TRITON_INTERPRET; both kernel files must follow Triton's
    # own decision, and both must import and fall back cleanly when triton is not installed.
    modes = {"true": dict(TRITON_INTERPRET="true"), "0": dict(TRITON_INTERPRET="0"), "no-triton": {}}
    procs = {m: subprocess.Popen([sys.executable, "-c", RULE_CHECK, m], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=dict(os.environ, TRITON_CACHE_DIR=str(tmp_path), **env))
             for m, env in modes.items()}
    got = {}
    for m, p in procs.items():
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        got[m] = json.loads(out.strip().splitlines()[-1])
    if triton_env.triton is not None:
        assert got["true"]["interpreted"] and got["true"]["attention"] == got["true"]["logprobs"] == "ran"
        assert not got["0"]["interpreted"] and got["0"]["defaults"] == ["triton", "triton"]
        for name in ("attention", "logprobs"):
            assert "needs CUDA" in got["0"][name] and "TRITON_INTERPRET" in got["0"][name]
    none = got["no-triton"]
    assert not none["triton"] and not none["interpreted"] and none["defaults"] == ["blockwise", "torch"]
    for name in ("attention", "logprobs"):
        assert "needs the triton package" in none[name]
    assert all(r["blockwise"] == pytest.approx(10.0) for r in got.values())  # 2 heads x 5 queries, each sums to 1
