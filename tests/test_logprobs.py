"""token_logprobs against the fp32 PyTorch reference: outputs and gradients, every backend, odd shapes.

Backends: "torch" (chunked PyTorch, on CPU) and "triton": interpreted on CPU when TRITON_INTERPRET=1 was set before
triton was imported (tests/conftest.py does it), compiled on CUDA otherwise (run e.g.
`TRITON_INTERPRET=0 pytest tests/test_logprobs.py` on a GPU machine). Interpreted Triton is slow: shapes stay tiny.
"""

import pytest
import torch

from minirlvr.kernels import logprobs as lp
from minirlvr.kernels import triton_env
from minirlvr.kernels.logprobs import token_logprobs, token_logprobs_reference

TRITON_DEVICE, MODE = triton_env.kernel_device()  # ("cpu", "interpreted"), ("cuda", "compiled") or (None, why)
TRITON = pytest.param("triton", id=f"triton-{MODE}", marks=() if TRITON_DEVICE else pytest.mark.skip(reason=MODE))
BACKENDS = [pytest.param("torch", id="torch"), TRITON]

# bf16/fp16 outputs (logp, entropy) are computed in fp32 from the same rounded inputs as the reference, so they get
# fp32 tolerances; only the gradients, returned in the input dtype, get the input dtype's (torch's defaults).
GRAD_TOL = {torch.float32: dict(rtol=1.3e-6, atol=1e-5), torch.bfloat16: dict(rtol=1.6e-2, atol=1e-2),
            torch.float16: dict(rtol=1e-3, atol=1e-3)}


def device_of(backend):
    return TRITON_DEVICE if backend == "triton" and TRITON_DEVICE else "cpu"


def make_inputs(N, D, V, dtype, device, logit_std=3.0, seed=0):
    """hidden, weight rounded to dtype, logits of standard deviation ~logit_std; targets hit 0 and V-1."""
    g = torch.Generator().manual_seed(seed)
    hidden = (torch.randn(N, D, generator=g) * logit_std / D ** 0.5).to(dtype)  # (N, D)
    weight = torch.randn(V, D, generator=g).to(dtype)  # (V, D)
    targets = torch.randint(0, V, (N,), generator=g)  # (N,)
    targets[0] = 0
    targets[-1] = V - 1
    return hidden.to(device), weight.to(device), targets.to(device)


def leaf(x, requires_grad=True):
    return x.detach().clone().requires_grad_(requires_grad)


def run(fn, hidden, weight, targets, temperature, grad_out, train_weight, **kw):
    """fn's logp, entropy and the gradients of sum(grad_out * logp)."""
    h, w = leaf(hidden), leaf(weight, train_weight)
    logp, entropy = fn(h, w, targets, temperature, True, **kw)
    (logp * grad_out).sum().backward()
    return logp.detach(), entropy, h.grad, (w.grad if train_weight else None)


def check_against_reference(backend, N, D, V, dtype, temperature, train_weight, logit_std=3.0):
    device = device_of(backend)
    hidden, weight, targets = make_inputs(N, D, V, dtype, device, logit_std)
    grad_out = torch.randn(N, generator=torch.Generator().manual_seed(1)).to(device)  # (N,)
    logp, ent, gh, gw = run(token_logprobs, hidden, weight, targets, temperature, grad_out, train_weight,
                            backend=backend)
    r_logp, r_ent, r_gh, r_gw = run(token_logprobs_reference, hidden.float(), weight.float(), targets, temperature,
                                    grad_out, train_weight)
    assert logp.dtype == torch.float32 and ent.dtype == torch.float32 and logp.shape == (N,)
    assert not ent.requires_grad  # entropy is for logging only
    torch.testing.assert_close(logp, r_logp)
    torch.testing.assert_close(ent, r_ent)
    assert gh.dtype == dtype
    torch.testing.assert_close(gh.float(), r_gh, **GRAD_TOL[dtype])
    if train_weight:
        assert gw.dtype == dtype
        torch.testing.assert_close(gw.float(), r_gw, **GRAD_TOL[dtype])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("N,D,V,dtype,temperature,train_weight", [
    (40, 48, 1000, torch.float32, 1.0, True),  # V, N, D not multiples of any block
    (40, 48, 1000, torch.bfloat16, 0.7, True),
    (1, 64, 1000, torch.float32, 1.3, False),  # N = 1, frozen lm_head (LoRA)
    (23, 32, 300, torch.float16, 1.0, False),
], ids=lambda v: str(v).removeprefix("torch.") if isinstance(v, torch.dtype) else None)
def test_matches_reference(backend, N, D, V, dtype, temperature, train_weight):
    check_against_reference(backend, N, D, V, dtype, temperature, train_weight)


def gamma(n, u=2.0 ** -24):
    """Higham's gamma_n = n u / (1 - n u): the relative error bound of a sum or dot product of n fp32 terms in any
    order (Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 3.4)."""
    return n * u / (1 - n * u)


def fp32_error_bounds(hidden, weight, targets, temperature, grad_out, out_dtype):
    """Elementwise bounds on |torch backend - exact| for logp, entropy, grad_h and grad_w, from the backend's own
    arithmetic (the exact values are computed in float64 from the same rounded inputs).

    The torch backend computes each logit as an fp32 dot product of D terms (error <= gamma_D sum|h w| / T), sums
    exp over one vocabulary chunk of at most VOCAB_CHUNK terms and combines the ceil(V / VOCAB_CHUNK) chunk sums
    with an online rescale, so every sum over the vocabulary it forms has at most K = VOCAB_CHUNK + V/VOCAB_CHUNK
    + a few roundings (exp, rescale, log) on its path: relative error <= gamma_K. An fp32 reference over the full
    vocabulary is bounded by gamma_V instead (3e-3 at V = 50257); different CPUs sum it in different orders, which
    is why this test compares with float64, not with the fp32 reference."""
    h, w = hidden.double(), weight.double()  # (N, D), (V, D)
    N, (V, D) = h.shape[0], w.shape
    z = h @ w.T / temperature  # (N, V) exact logits
    logp_all = torch.log_softmax(z, -1)  # (N, V)
    p = logp_all.exp()  # (N, V)
    K = lp.VOCAB_CHUNK + -(-V // lp.VOCAB_CHUNK) + 8
    E = gamma(D) * ((h.abs() @ w.abs().T).amax(1)) / temperature  # (N,): worst logit error of a row
    eps = 2 * E + gamma(K)  # (N,): relative error of every p_j, absolute error of lse
    logp_tol = eps + gamma(4) * (z.gather(1, targets[:, None]).squeeze(1).abs() + z.abs().amax(1))
    ent_tol = eps * (1 + 2 * (p * z.abs()).sum(1)) + gamma(K) * (p * z.abs()).sum(1)
    g = grad_out.double().abs() / temperature  # (N,)
    onehot = torch.zeros_like(p).scatter_(1, targets[:, None], 1.0)  # (N, V)
    gh_tol = g[:, None] * ((eps[:, None] + gamma(K)) * (p @ w.abs()) + gamma(K) * w.abs()[targets])  # (N, D)
    gw_tol = ((g[:, None] * (eps[:, None] * p + gamma(N) * (onehot - p).abs())).T @ h.abs())  # (V, D)
    exact_gh = (grad_out.double()[:, None] * (w[targets] - p @ w)) / temperature  # (N, D)
    exact_gw = ((grad_out.double()[:, None] * (onehot - p)).T @ h) / temperature  # (V, D)
    if out_dtype != torch.float32:  # the gradients come back rounded to the input dtype: half an ulp more
        u_out = torch.finfo(out_dtype).eps / 2  # unit roundoff of the output dtype
        gh_tol = gh_tol + u_out * exact_gh.abs() * (1 + 1e-3)
        gw_tol = gw_tol + u_out * exact_gw.abs() * (1 + 1e-3)
    exact = dict(logp=logp_all.gather(1, targets[:, None]).squeeze(1), entropy=-(p * logp_all).sum(1),
                 grad_h=exact_gh, grad_w=exact_gw)
    return exact, dict(logp=logp_tol, entropy=ent_tol, grad_h=gh_tol, grad_w=gw_tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def test_gpt2_vocabulary_torch(dtype):
    """GPT-2's 50,257-entry vocabulary (not a multiple of the chunk) against float64, within the bounds that the
    backend's fp32 arithmetic guarantees (fp32_error_bounds). The bounds are ~1e-4 on logp: a dropped or doubled
    vocabulary chunk, a wrong temperature or a wrong target column moves logp by 1e-2 or more."""
    N, D, V, T = 9, 32, 50257, 0.9
    hidden, weight, targets = make_inputs(N, D, V, dtype, "cpu", 0.9)
    grad_out = torch.randn(N, generator=torch.Generator().manual_seed(1))  # (N,)
    logp, ent, gh, gw = run(token_logprobs, hidden, weight, targets, T, grad_out, True, backend="torch")
    exact, tol = fp32_error_bounds(hidden, weight, targets, T, grad_out, dtype)
    assert gh.dtype == dtype and gw.dtype == dtype
    for name, got in dict(logp=logp, entropy=ent, grad_h=gh, grad_w=gw).items():
        err = (got.double() - exact[name]).abs()
        worst = (err / tol[name]).max().item()
        assert worst <= 1.0, f"{name}: error {err.max().item():.3g} exceeds its fp32 bound ({worst:.2f}x)"
    assert tol["logp"].max() < 2e-4  # the bound itself stays tight enough to catch a real bug


def test_torch_backend_chunks_rows_and_vocabulary(monkeypatch):
    # many partial row and vocabulary chunks, so the online update and the backward chunk loop really run
    monkeypatch.setattr(lp, "ROW_CHUNK", 16)
    monkeypatch.setattr(lp, "VOCAB_CHUNK", 96)
    check_against_reference("torch", 40, 48, 1000, torch.float32, 0.8, True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_magnitude_logits(backend):
    # integer-valued inputs make every logit (|z| up to ~1e5) exact in fp32 whatever the summation order, so any
    # difference from the reference comes from the log-sum-exp itself; exp(1e5) would overflow if computed naively
    device = device_of(backend)
    g = torch.Generator().manual_seed(3)
    N, D, V = 20, 48, 700
    hidden = (torch.randint(-3, 4, (N, D), generator=g) * 256.0).to(device)  # (N, D)
    weight = torch.randint(-3, 4, (V, D), generator=g).float().to(device)  # (V, D)
    targets = (hidden @ weight.T).argmax(1)  # (N,): logp near 0 for these rows ...
    targets[::2] = torch.randint(0, V, (N // 2,), generator=g).to(device)  # ... and around -1e4 for these
    grad_out = torch.ones(N, device=device)
    logp, ent, gh, gw = run(token_logprobs, hidden, weight, targets, 1.0, grad_out, True, backend=backend)
    r_logp, r_ent, r_gh, r_gw = run(token_logprobs_reference, hidden, weight, targets, 1.0, grad_out, True)
    assert r_logp.abs().max() > 1e3  # the test really has huge logits
    assert torch.isfinite(logp).all() and torch.isfinite(gh).all() and torch.isfinite(gw).all()
    torch.testing.assert_close(logp, r_logp)
    torch.testing.assert_close(ent, r_ent)
    torch.testing.assert_close(gh, r_gh)
    torch.testing.assert_close(gw, r_gw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_accumulates_across_calls_with_tied_embedding(backend):
    # the LM head is a view of the embedding matrix (tied embeddings), used twice (policy step with two
    # micro-batches), plus an embedding lookup: all three contributions must add up in .grad
    device = device_of(backend)
    N, D, V = 17, 32, 500
    hidden, weight, targets = make_inputs(N, D, V, torch.float32, device)
    ids = torch.randint(0, V, (5,), generator=torch.Generator().manual_seed(4)).to(device)
    grads = {}
    for name, fn, kw in (("ours", token_logprobs, dict(backend=backend)), ("ref", token_logprobs_reference, {})):
        emb = leaf(torch.cat([weight, weight[:3]]))  # (V + 3, D): the head is its first V rows
        h = leaf(hidden)
        fn(h, emb[:V], targets, 1.0, **kw).sum().backward()
        (2 * fn(h, emb[:V], targets.flip(0), 0.5, **kw)).sum().backward()
        emb[ids].sum().backward()
        grads[name] = (h.grad, emb.grad)
    torch.testing.assert_close(grads["ours"][0], grads["ref"][0])
    torch.testing.assert_close(grads["ours"][1], grads["ref"][1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_bf16_grad_hidden_is_rounded_once_across_vocabulary_chunks(backend, monkeypatch):
    # The target row a and its near twin b sit in different vocabulary chunks and share all the probability, so
    # the chunks' products d @ W[chunk] (about +0.5 W_a and -0.5 W_b) nearly cancel. Every other head row is zero,
    # so each chunk's product is one exact term. Summed in fp32 and rounded once, grad_hidden is within about one
    # bf16 step of the exact sum; rounding each chunk's product to bf16 first is off by up to ~100 steps.
    monkeypatch.setattr(lp, "VOCAB_CHUNK", 384)
    monkeypatch.setattr(lp, "_dlogits_chunk", lambda N, device: 384)
    device = device_of(backend)
    g = torch.Generator().manual_seed(5)
    N, D, V, a, b = 6, 32, 1000, 5, 900
    weight = torch.zeros(V, D)  # (V, D)
    weight[a] = torch.randn(D, generator=g)
    weight[b] = weight[a] + 0.02 * torch.randn(D, generator=g)
    weight = weight.bfloat16()
    hidden = (8 * weight[a].float() / weight[a].float().norm() + 0.1 * torch.randn(N, D, generator=g)).bfloat16()
    targets = torch.full((N,), a)  # (N,)
    h = leaf(hidden.to(device))
    token_logprobs(h, weight.to(device), targets.to(device), backend=backend).sum().backward()
    z = hidden.double() @ weight.double().T  # (N, V)
    d = torch.nn.functional.one_hot(targets, V).double() - torch.softmax(z, -1)  # (N, V): d_a = -d_b, rest ~0
    exact = d @ weight.double()  # (N, D)
    chunk = (d[:, :384].abs() @ weight[:384].double().abs()).max()  # size of one chunk's product
    assert exact.abs().max() < 0.1 * chunk  # it does cancel
    # Allowed: one bf16 step of the result; the triton backend's rounding of d to bf16 (by design: to nearest on a
    # GPU, truncating in Triton's interpreter), at most one step of |d_a| = |d_b|, times W_a - W_b; fp32 noise.
    dw = (weight[a].double() - weight[b].double()).abs()  # (D,)
    tol = 2.0 ** (torch.frexp(exact.float())[1] - 8) + 2.0 ** -7 * d[:, [b]].abs() * dw + 2.0 ** -20 * chunk
    err = (h.grad.double().cpu() - exact).abs()  # (N, D)
    assert (err <= tol).all(), f"{(err / tol).max():.1f} times the tolerance"


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_grad_hidden_when_hidden_is_frozen(backend, monkeypatch):
    # only the head is trained: the backward must not spend a matmul per chunk on grad_hidden
    device = device_of(backend)
    hidden, weight, targets = make_inputs(13, 32, 500, torch.float32, device)
    returned = []
    name = "_triton_backward" if backend == "triton" else "_torch_backward"
    real = getattr(lp, name)
    monkeypatch.setattr(lp, name, lambda *args: returned.append(real(*args)) or returned[-1])
    w = leaf(weight)
    token_logprobs(hidden, w, targets, backend=backend).sum().backward()
    assert returned[0][0] is None
    w_ref = leaf(weight)
    token_logprobs_reference(hidden, w_ref, targets).sum().backward()
    torch.testing.assert_close(w.grad, w_ref.grad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_double_backward_raises(backend):
    # the backward is hand-written with in-place ops: differentiating it again must fail loudly
    device = device_of(backend)
    hidden, weight, targets = make_inputs(7, 16, 100, torch.float32, device)
    h = leaf(hidden)
    logp = token_logprobs(h, weight, targets, backend=backend)
    (grad,) = torch.autograd.grad((logp ** 2).sum(), h, create_graph=True)  # upstream gradient 2 logp needs grad
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.sum().backward()


@pytest.mark.parametrize("backend", BACKENDS)
def test_masked_rows_get_exactly_zero_gradient(backend):
    device = device_of(backend)
    N, D, V = 19, 32, 400
    hidden, weight, targets = make_inputs(N, D, V, torch.bfloat16, device)
    mask = (torch.arange(N, device=device) % 3 != 0).float()  # (N,) rows 0, 3, 6, ... are padding
    h, w = leaf(hidden), leaf(weight)
    (token_logprobs(h, w, targets, backend=backend) * mask).sum().backward()
    assert torch.equal(h.grad[mask == 0], torch.zeros_like(h.grad[mask == 0]))
    assert (h.grad[mask == 1].abs().sum(1) > 0).all()
    # the padding rows also contribute nothing to the weight gradient
    h2, w2 = leaf(hidden[mask == 1]), leaf(weight)
    token_logprobs(h2, w2, targets[mask == 1].contiguous(), backend=backend).sum().backward()
    torch.testing.assert_close(w.grad.float(), w2.grad.float(), **GRAD_TOL[torch.bfloat16])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy (the interpreter) warns about the NaN it propagates
@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_in_hidden_gives_nan_not_zero(backend):
    device = device_of(backend)
    hidden, weight, targets = make_inputs(12, 32, 300, torch.float32, device)
    hidden[4, 7] = float("nan")
    logp, ent = token_logprobs(hidden, weight, targets, return_entropy=True, backend=backend)
    assert torch.isnan(logp[4]) and torch.isnan(ent[4])
    keep = torch.arange(12, device=device) != 4
    torch.testing.assert_close(logp[keep], token_logprobs_reference(hidden, weight, targets)[keep])


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_in_weight_gives_nan(backend):
    device = device_of(backend)
    hidden, weight, targets = make_inputs(12, 32, 300, torch.float32, device)
    weight[150, 3] = float("nan")  # a non-target row still enters every normalizer
    assert torch.isnan(token_logprobs(hidden, weight, targets, backend=backend)).all()


def test_empty_batch():
    hidden, weight, _ = make_inputs(3, 16, 50, torch.float32, "cpu")
    h = leaf(hidden[:0])
    logp = token_logprobs(h, weight, torch.zeros(0, dtype=torch.long))
    assert logp.shape == (0,)
    logp.sum().backward()
    assert h.grad.shape == (0, 16)


@pytest.mark.parametrize("bad,match", [
    (lambda h, w, t: (h, w[:, :-1].contiguous(), t), "weight"),
    (lambda h, w, t: (h[0], w, t), "hidden"),
    (lambda h, w, t: (h, w, t[:-1]), "targets"),
    (lambda h, w, t: (h, w.double(), t), "weight dtype"),
    (lambda h, w, t: (h.double(), w.double(), t), "hidden"),
    (lambda h, w, t: (h, w, t.int()), "targets must be int64"),
    (lambda h, w, t: (h, w, t.float()), "targets"),
    (lambda h, w, t: (h[:, ::2], w[:, ::2], t), "hidden must be contiguous"),
    (lambda h, w, t: (h, w.T.contiguous().T, t), "weight must be contiguous"),
    (lambda h, w, t: (h, w, torch.stack([t, t], 1)[:, 0]), "targets must be contiguous"),
    (lambda h, w, t: (h, w, t.clone().fill_(-1)), r"targets must lie in \[0, V=50\), found -1"),
    (lambda h, w, t: (h, w, torch.cat([t[:-1], t.new_tensor([50])])), "found 50"),
    (lambda h, w, t: (h.tolist(), w, t), "hidden must be a torch.Tensor"),
])
def test_bad_input_names_the_argument(bad, match):
    hidden, weight, targets = make_inputs(6, 16, 50, torch.float32, "cpu")
    with pytest.raises(ValueError, match=match):
        token_logprobs(*bad(hidden, weight, targets))


@pytest.mark.parametrize("temperature", [0, -1.0, float("inf"), float("nan"), "1"])
def test_bad_temperature(temperature):
    hidden, weight, targets = make_inputs(6, 16, 50, torch.float32, "cpu")
    with pytest.raises(ValueError, match="temperature"):
        token_logprobs(hidden, weight, targets, temperature)


def test_backend_choice(monkeypatch):
    hidden, weight, targets = make_inputs(6, 16, 50, torch.float32, "cpu")
    with pytest.raises(ValueError, match="backend"):
        token_logprobs(hidden, weight, targets, backend="cuda")
    monkeypatch.setattr(lp, "_ENV_BACKEND", None)
    assert lp.default_backend("cpu") == "torch"
    monkeypatch.setattr(lp, "_ENV_BACKEND", "reference")  # what MINIRLVR_LOGPROB_BACKEND=reference sets at import
    assert lp.default_backend("cpu") == "reference"
    calls = []
    monkeypatch.setattr(lp, "token_logprobs_reference", lambda *args: calls.append(args) or "reference was used")
    assert token_logprobs(hidden, weight, targets) == "reference was used" and len(calls) == 1


@pytest.mark.skipif(triton_env.triton is None, reason="triton not importable")
def test_triton_kernels_compile_for_sm90_without_spills():
    # the interpreter does not type-check like the compiler does nor say anything about registers: compile every
    # dtype and entropy variant to an sm_90a cubin (no GPU needed) and read ptxas's report
    from minirlvr.kernels.compile_check import SM90_SHARED_LIMIT, figures_sm90

    rows = [r for r in figures_sm90() if r["variant"].startswith("logprobs ")]
    names = {r["variant"] for r in rows}
    assert names == {f"logprobs {k} {dt}" for k in ("forward+entropy", "forward", "dlogits")
                     for dt in ("bf16", "fp16", "fp32")}
    for r in rows:
        assert (r["spill_stores"], r["spill_loads"]) == (0, 0), r
        assert 0 < r["shared"] <= SM90_SHARED_LIMIT, r
