"""The own sampler against model.generate and against the training forward, on a tiny random Qwen2; its fast path
(static cache, compiled decode step) against its eager path."""

import pytest
import torch

from minirlvr.engine.model import tiny_model, word_tokenizer
from minirlvr.engine.sampler import generate, left_pad
from minirlvr.train import sequence_logp

PAD, EOS = 0, 1
PROMPTS = [[5, 6, 7, 8, 9, 10], [11, 12], [3, 4, 5, 6], [20]]  # uneven lengths: left padding matters


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: tiny ops are faster without intra-op threads
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model():
    return tiny_model(vocab_size=48, eos_token_id=EOS, pad_token_id=PAD, init_std=0.1, seed=1)


def hf_greedy(model, prompts, n, eos):
    ids, mask, _ = left_pad(prompts, PAD, "cpu")
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=n, pad_token_id=PAD,
                         eos_token_id=eos)
    return out[:, ids.shape[1]:]


def test_greedy_equals_hf_generate_batched_and_one_by_one(model):
    ro = generate(model, PROMPTS, group_size=1, max_new_tokens=12, eos_ids=[], pad_id=PAD, temperature=0)
    assert torch.equal(ro.tokens, hf_greedy(model, PROMPTS, 12, eos=None))
    for i, p in enumerate(PROMPTS):
        assert torch.equal(ro.tokens[i], hf_greedy(model, [p], 12, eos=None)[0])
    assert ro.mask.sum() == 12 * len(PROMPTS) and not ro.stopped.any()


def test_rows_stop_at_eos_and_match_hf(model):
    free = generate(model, PROMPTS, 1, 12, [], PAD, temperature=0).tokens
    eos = int(free[0, 3])  # make row 0's 4th greedy token the EOS
    ro = generate(model, PROMPTS, 1, 12, [eos], PAD, temperature=0)
    hf = hf_greedy(model, PROMPTS, 12, eos=eos)
    for n in range(len(PROMPTS)):
        hits = (free[n] == eos).nonzero().flatten().tolist()
        length = hits[0] + 1 if hits else 12  # EOS itself is a generated, trained action
        assert ro.mask[n].sum().item() == length
        assert torch.equal(ro.mask[n], (torch.arange(12) < length).float())
        assert bool(ro.stopped[n]) == bool(hits)
        assert torch.equal(ro.tokens[n, :length], free[n, :length])
        assert (ro.tokens[n, length:] == PAD).all() and (ro.logp[n, length:] == 0).all()
        assert torch.equal(ro.tokens[n, :length], hf[n, :length])
    assert ro.stopped[0] and ro.mask[0].sum() == 4


def test_fixed_seed_reproduces_and_seed_matters(model):
    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return generate(model, PROMPTS, 3, 10, [EOS], PAD, temperature=1.0, top_p=0.9, top_k=20, generator=g)

    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.logp, b.logp)
    assert not torch.equal(a.tokens, c.tokens)
    assert a.tokens.shape[0] == 3 * len(PROMPTS)


@pytest.mark.parametrize("temperature,top_p,top_k", [(1.0, 1.0, 0), (0.7, 0.8, 10), (0, 1.0, 0)])
def test_sampling_logp_equal_recomputed(model, temperature, top_p, top_k):
    g = torch.Generator().manual_seed(0)
    ro = generate(model, PROMPTS, 3, 10, [EOS, 2], PAD, temperature, top_p, top_k, generator=g)
    G = 3
    t = temperature if temperature > 0 else 1.0
    logp, _ = sequence_logp(model, ro.prompt_ids.repeat_interleave(G, 0), ro.prompt_mask.repeat_interleave(G, 0),
                            ro.tokens, ro.mask, t)
    torch.testing.assert_close(ro.logp, logp, rtol=0, atol=2e-5)
    prompt_of = torch.arange(len(ro.tokens)) // G  # each prompt once, its cache shared by its group
    shared, _ = sequence_logp(model, ro.prompt_ids, ro.prompt_mask, ro.tokens, ro.mask, t, prompt_of=prompt_of)
    torch.testing.assert_close(ro.logp, shared, rtol=0, atol=2e-5)
    assert (ro.logp[ro.mask == 1] < 0).all()


def test_top_k_one_and_tiny_top_p_are_greedy(model):
    greedy = generate(model, PROMPTS, 2, 8, [], PAD, temperature=0).tokens
    g = torch.Generator().manual_seed(3)
    assert torch.equal(generate(model, PROMPTS, 2, 8, [], PAD, 1.0, 1.0, 1, generator=g).tokens, greedy)
    assert torch.equal(generate(model, PROMPTS, 2, 8, [], PAD, 1.0, 1e-6, 0, generator=g).tokens, greedy)


def test_stop_strings():
    tok = word_tokenizer([f"w{i}" for i in range(30)])
    m = tiny_model(vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, init_std=0.1)
    prompts = [tok("w1 w2 w3").input_ids, tok("w4").input_ids]
    free = generate(m, prompts, 1, 10, [], tok.pad_token_id, temperature=0)
    stop_word = tok.decode(free.tokens[1, 2:3])
    ro = generate(m, prompts, 1, 10, [], tok.pad_token_id, temperature=0, stop_strings=(stop_word,), tokenizer=tok)
    words = tok.decode(free.tokens[1]).split()
    assert ro.stopped[1] and ro.mask[1].sum().item() == words.index(stop_word) + 1
    assert tok.decode(ro.tokens[1][ro.mask[1].bool()]).split()[-1] == stop_word


def test_left_pad_mask_and_positions():
    # RoPE models are blind to a constant position shift, so the greedy tests cannot catch wrong positions
    ids, mask, pos = left_pad([[7, 8, 9], [4]], PAD, "cpu")
    assert ids.tolist() == [[7, 8, 9], [PAD, PAD, 4]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert pos[0].tolist() == [0, 1, 2] and pos[1, 2].item() == 0


@pytest.mark.parametrize("top_k,top_p,support", [(3, 1.0, {0, 1, 2}), (0, 0.6, {0, 1}), (0, 0.85, {0, 1, 2}),
                                                 (2, 0.95, {0, 1}), (4, 0.6, {0, 1})])
def test_top_k_and_top_p_restrict_the_sampled_support(top_k, top_p, support):
    from minirlvr.engine.sampler import sample_token

    probs = torch.tensor([0.5, 0.3, 0.1, 0.06, 0.04])
    logits = torch.log(probs).repeat(4000, 1)  # (N, V): 4000 draws from one distribution
    token, lp = sample_token(logits, 1.0, top_p, top_k, torch.Generator().manual_seed(0))
    assert set(token.tolist()) == support  # every kept token is drawn, no other
    kept = probs[sorted(support)]
    freq = torch.bincount(token, minlength=5)[sorted(support)].float() / len(token)
    torch.testing.assert_close(freq, kept / kept.sum(), rtol=0, atol=0.03)  # renormalized over the kept tokens
    torch.testing.assert_close(lp, torch.log(probs)[token])  # the returned logp is the untruncated one


# ---------------------------------------------------------------------------------------------- batch compaction


@pytest.fixture
def row_by_row_linear(monkeypatch):
    """Every nn.Linear multiplies one row at a time. MKL's GEMM picks another kernel for a few small batch sizes
    (here up to 2-5 rows), which rounds a row's product differently in the last bit; one row at a time, a row's
    result is the same in any batch, so the compaction's bookkeeping is checked bit for bit."""
    def forward(self, x):
        rows = x.reshape(-1, 1, x.shape[-1])  # (M, 1, K)
        return torch.cat([torch.nn.functional.linear(r, self.weight, self.bias) for r in rows]).reshape(
            *x.shape[:-1], -1)

    monkeypatch.setattr(torch.nn.Linear, "forward", forward)


def frequent_tokens(model, prompts, share=0.06, temperature=1.0):
    """EOS ids that make rows stop at many different steps: the most frequent sampled tokens, ~`share` of all."""
    tokens = generate(model, prompts, 4, 16, [], PAD, temperature, generator=torch.Generator().manual_seed(0)).tokens
    counts = torch.bincount(tokens.flatten(), minlength=model.config.vocab_size).float()  # (V,)
    order = counts.argsort(descending=True)
    return order[:int((counts[order].cumsum(0) / counts.sum() < share).sum()) + 1].tolist()


def decode_batch_sizes(model, **kw):
    """generate's rollouts and the number of rows of each forward pass after the prefill."""
    sizes = []
    hook = model.register_forward_pre_hook(lambda m, a, k: sizes.append(k["input_ids"].shape[0]), with_kwargs=True)
    try:
        ro = generate(model, **kw)
    finally:
        hook.remove()
    return ro, sizes[1:]


def assert_same_rollouts(a, b):
    for k in ("tokens", "logp", "mask", "stopped"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k


@pytest.mark.parametrize("path", ["eager", "static"])
@pytest.mark.parametrize("G,temperature,top_p,top_k", [(1, 0, 1.0, 0), (3, 1.0, 1.0, 0), (2, 0.7, 0.8, 10),
                                                       (4, 1.3, 0.9, 0), (2, 1.0, 1.0, 5)])
def test_compaction_changes_nothing(model, row_by_row_linear, G, temperature, top_p, top_k, path):
    prompts = PROMPTS + [[7, 7, 30], [40, 2, 9, 9, 9], [13], [25, 26, 27, 28, 29, 30, 31]]
    eos = frequent_tokens(model, prompts, temperature=temperature)
    run = [decode_batch_sizes(model, prompts=prompts, group_size=G, max_new_tokens=20, eos_ids=eos, pad_id=PAD,
                              temperature=temperature, top_p=top_p, top_k=top_k, path=path,
                              generator=torch.Generator().manual_seed(5), compact=compact) for compact in (False, True)]
    (ref, ref_sizes), (ro, sizes) = run
    assert_same_rollouts(ro, ref)
    length = ro.mask.sum(1)  # (N,)
    assert len(set(length.tolist())) >= 3 and length.max() == 20  # rows end at different steps, some run to the end
    assert set(ref_sizes) == {len(prompts) * G} and sizes[-1] < sizes[0]


def test_compaction_changes_nothing_with_stop_strings(row_by_row_linear):
    tok = word_tokenizer([f"w{i}" for i in range(30)])
    m = tiny_model(vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, init_std=0.1)
    prompts = [tok("w1 w2 w3 w4 w5").input_ids, tok("w4").input_ids, tok("w7 w8").input_ids]
    stops = tuple(tok.decode([t]) for t in frequent_tokens(m, prompts, share=0.1))
    ro, ref = (generate(m, prompts, 3, 12, [], tok.pad_token_id, 1.0, generator=torch.Generator().manual_seed(1),
                        stop_strings=stops, tokenizer=tok, compact=compact) for compact in (True, False))
    assert_same_rollouts(ro, ref)
    assert 0 < ro.stopped.sum() < len(ro.stopped) and len(set(ro.mask.sum(1).tolist())) >= 3


def test_compaction_keeps_a_padded_row(model, row_by_row_linear):
    # only the longest prompt's rows (no left padding) outlive the others: without a padded row left in the batch
    # transformers would switch to the unmasked attention kernel, which rounds differently
    free = generate(model, PROMPTS, 1, 12, [], PAD, temperature=0).tokens
    eos = sorted(set(free[1:, :3].flatten().tolist()) - set(free[0].tolist()))
    assert eos
    (ro, sizes), (ref, _) = (decode_batch_sizes(model, prompts=PROMPTS, group_size=2, max_new_tokens=12, eos_ids=eos,
                                                pad_id=PAD, temperature=0, compact=c, path="eager")
                             for c in (True, False))
    assert_same_rollouts(ro, ref)
    assert not ro.stopped[:2].any() and ro.stopped[2:].all()
    assert sizes[-1] == 3  # the two rows of prompt 0 and one stopped padded row
    # the static cache's mask always masks the slots not written yet: no padded row needs to stay
    (ro, sizes), (ref, _) = (decode_batch_sizes(model, prompts=PROMPTS, group_size=2, max_new_tokens=12, eos_ids=eos,
                                                pad_id=PAD, temperature=0, compact=c, path="static")
                             for c in (True, False))
    assert_same_rollouts(ro, ref)
    assert sizes[-1] == 2


def test_compaction_equals_reference_on_the_real_matmul(model):
    # with MKL's own GEMM a row's logits can change in the last bit when the batch shrinks below a few rows:
    # the tokens stay the same here, the log-probs agree to fp32 rounding
    eos = frequent_tokens(model, PROMPTS)
    ro, ref = (generate(model, PROMPTS, 3, 20, eos, PAD, 1.0, 0.9, 0, generator=torch.Generator().manual_seed(2),
                        compact=compact) for compact in (True, False))
    assert torch.equal(ro.tokens, ref.tokens) and torch.equal(ro.mask, ref.mask)
    assert torch.equal(ro.stopped, ref.stopped)
    torch.testing.assert_close(ro.logp, ref.logp, rtol=0, atol=1e-5)


def test_one_new_token_and_all_rows_stopping_at_once(model):
    one, ref = (generate(model, PROMPTS, 2, 1, [EOS], PAD, generator=torch.Generator().manual_seed(0), compact=c)
                for c in (True, False))
    assert_same_rollouts(one, ref)
    assert one.tokens.shape == (2 * len(PROMPTS), 1) and one.mask.all()
    every, ref = (generate(model, PROMPTS, 2, 10, list(range(48)), PAD, generator=torch.Generator().manual_seed(0),
                           compact=c) for c in (True, False))
    assert_same_rollouts(every, ref)
    assert every.tokens.shape[1] == 1 and every.stopped.all()
    same = [PROMPTS[0]] * 3  # identical rows stop at the same step
    free = generate(model, same, 1, 8, [], PAD, temperature=0).tokens
    eos = int(free[0, 3])
    assert eos not in free[0, :3].tolist()
    (ro, sizes), (ref, _) = (decode_batch_sizes(model, prompts=same, group_size=2, max_new_tokens=8, eos_ids=[eos],
                                                pad_id=PAD, temperature=0, compact=c) for c in (True, False))
    assert_same_rollouts(ro, ref)
    assert ro.stopped.all() and ro.mask.sum(1).tolist() == [4] * 6 and sizes == [6, 6, 6]


# ---------------------------------------------------------------------------------------------- the fast path


def assert_close_rollouts(a, b):
    """Same tokens, masks and stops; log-probs to fp32 rounding: the static cache's attention also sums over the
    masked slots not written yet (exact zeros), in another order than the eager path's shorter rows."""
    for k in ("tokens", "mask", "stopped"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    torch.testing.assert_close(a.logp, b.logp, rtol=0, atol=1e-5)


@pytest.mark.parametrize("G,temperature,top_p,top_k", [(1, 0, 1.0, 0), (3, 0, 1.0, 0), (3, 1.0, 1.0, 0),
                                                       (4, 0.7, 0.9, 10)])
def test_static_path_equals_eager_path(model, G, temperature, top_p, top_k):
    # left padding (uneven prompts), G > 1, EOS ids that stop rows at many steps, with and without compaction
    eos = frequent_tokens(model, PROMPTS, temperature=max(temperature, 1.0))
    runs = {(path, c): generate(model, PROMPTS, G, 16, eos, PAD, temperature, top_p, top_k, path=path, compact=c,
                                generator=torch.Generator().manual_seed(4))
            for path in ("eager", "static") for c in (True, False)}
    ref = runs[("eager", False)]
    assert ref.stopped.any() and len(set(ref.mask.sum(1).tolist())) >= 3  # rows stop at different steps
    for ro in runs.values():
        assert_close_rollouts(ro, ref)


def test_static_path_equals_eager_path_with_stop_strings():
    tok = word_tokenizer([f"w{i}" for i in range(30)])
    m = tiny_model(vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, init_std=0.1)
    prompts = [tok("w1 w2 w3 w4 w5").input_ids, tok("w4").input_ids, tok("w7 w8").input_ids]
    stops = tuple(tok.decode([t]) for t in frequent_tokens(m, prompts, share=0.1))
    ro, ref = (generate(m, prompts, 3, 12, [], tok.pad_token_id, 1.0, generator=torch.Generator().manual_seed(1),
                        stop_strings=stops, tokenizer=tok, path=path) for path in ("static", "eager"))
    assert_close_rollouts(ro, ref)
    assert 0 < ro.stopped.sum() < len(ro.stopped)


def test_only_live_rows_are_sampled(model, monkeypatch):
    import minirlvr.engine.sampler as sampler

    sampled, real = [], sampler.sample_token
    monkeypatch.setattr(sampler, "sample_token", lambda logits, *a: sampled.append(len(logits)) or real(logits, *a))
    eos = frequent_tokens(model, PROMPTS)
    for path, compact in (("static", False), ("eager", True)):
        sampled.clear()
        ro = generate(model, PROMPTS, 3, 16, eos, PAD, 1.0, generator=torch.Generator().manual_seed(2), path=path,
                      compact=compact)
        live = ro.mask.sum(0).long()  # (L,) rows still generating at each step
        assert sampled == live[live > 0].tolist() and live.min() < live.max()


def test_path_is_checked(model):
    with pytest.raises(ValueError, match="path must be"):
        generate(model, PROMPTS, 1, 4, [], PAD, path="fast")


def test_compiled_path_compiles_once_per_shape(model, monkeypatch):
    """The compiled decode step through dynamo with a counting backend that runs the captured graph as is (inductor
    would take a minute on a small CPU; the GPU check compiles for real): one compilation for the first call's
    shape, none per step, none for a second call of the same shapes, and the same rollouts as the static path."""
    import minirlvr.engine.sampler as sampler
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    counter = CompileCounter()
    monkeypatch.setattr(sampler, "compile_step", lambda fn, device: torch.compile(fn, backend=counter, dynamic=False))
    monkeypatch.setattr(sampler, "_compiled", {})
    kw = dict(prompts=PROMPTS, group_size=2, max_new_tokens=10, eos_ids=[], pad_id=PAD, temperature=1.0)
    ro = generate(model, path="compiled", generator=torch.Generator().manual_seed(3), **kw)
    first = counter.frame_count
    assert first == 1  # one graph for the shape: the step traces whole (a graph break would add frames)
    again = generate(model, path="compiled", generator=torch.Generator().manual_seed(3), **kw)
    assert counter.frame_count == first  # 9 decode steps and a second call: no recompilation
    ref = generate(model, path="static", generator=torch.Generator().manual_seed(3), **kw)
    assert_same_rollouts(ro, again)
    assert_close_rollouts(ro, ref)  # the compiled cache has more (masked) slots: rounded up
    # compaction once 3/4 stopped, to power-of-two row counts: 8 rows -> 2 -> 1 at most, each shape compiled once
    eos = frequent_tokens(model, PROMPTS, share=0.15)
    ro = generate(model, **dict(kw, eos_ids=eos), path="compiled", generator=torch.Generator().manual_seed(5))
    ref = generate(model, **dict(kw, eos_ids=eos), path="static", generator=torch.Generator().manual_seed(5))
    assert_close_rollouts(ro, ref)
    assert len(set(ro.mask.sum(1).tolist())) >= 3
    assert 1 <= counter.frame_count - first <= 2  # one graph per row count reached: 2, 1 (8 rows at the start)
    torch._dynamo.reset()


def test_compiled_path_falls_back_when_compilation_fails(model, monkeypatch):
    import minirlvr.engine.sampler as sampler

    def broken(fn, device):
        def step(*a, **k):
            raise RuntimeError("no compiler here")
        return step

    monkeypatch.setattr(sampler, "compile_step", broken)
    monkeypatch.setattr(sampler, "_compiled", {})
    eos = frequent_tokens(model, PROMPTS)
    with pytest.warns(UserWarning, match="compiled decode step failed .*no compiler here"):
        ro = generate(model, PROMPTS, 2, 12, eos, PAD, 1.0, generator=torch.Generator().manual_seed(6), path="compiled")
    ref = generate(model, PROMPTS, 2, 12, eos, PAD, 1.0, generator=torch.Generator().manual_seed(6), path="eager")
    assert_close_rollouts(ro, ref)


@pytest.mark.parametrize("path", ["eager", "static"])
def test_train_samples_on_the_configured_path(tmp_path, monkeypatch, path):
    import minirlvr.train as train_mod
    from minirlvr.engine.config import ConfigError, make_config

    tok = word_tokenizer([f"w{i}" for i in range(20)])
    m = tiny_model(vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, init_std=0.1)
    paths, real = [], train_mod.generate
    monkeypatch.setattr(train_mod, "generate", lambda *a, **k: paths.append(k.get("path")) or real(*a, **k))
    records = [{"key": i, "prompt": f"w{i} w{i + 1}"} for i in range(4)]
    cfg = make_config(out_dir=str(tmp_path), steps=1, prompts_per_step=2, group_size=2, max_new_tokens=4,
                      micro_batch_size=4, lora_r=2, lora_alpha=4, progress=False, log_every=0, rollouts_every=0,
                      ckpt_every=0, sampler=path)
    train_mod.train(cfg, lambda recs, texts: ([0.0] * len(texts), {}), records=records, model=m, tokenizer=tok)
    assert paths == [path]
    with pytest.raises(ConfigError, match="'sampler' must be one of"):
        make_config(sampler="fast")
