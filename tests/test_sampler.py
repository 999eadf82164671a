"""The own sampler against model.generate and against the training forward, on a tiny random Qwen2."""

import pytest
import torch

from minirlvr.model import tiny_model, word_tokenizer
from minirlvr.sampler import generate, left_pad
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
    logp, _ = sequence_logp(model, ro.prompt_ids.repeat_interleave(G, 0), ro.prompt_mask.repeat_interleave(G, 0),
                            ro.tokens, ro.mask, temperature if temperature > 0 else 1.0)
    torch.testing.assert_close(ro.logp, logp, rtol=0, atol=2e-5)
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
    from minirlvr.sampler import sample_token

    probs = torch.tensor([0.5, 0.3, 0.1, 0.06, 0.04])
    logits = torch.log(probs).repeat(4000, 1)  # (N, V): 4000 draws from one distribution
    token, lp = sample_token(logits, 1.0, top_p, top_k, torch.Generator().manual_seed(0))
    assert set(token.tolist()) == support  # every kept token is drawn, no other
    kept = probs[sorted(support)]
    freq = torch.bincount(token, minlength=5)[sorted(support)].float() / len(token)
    torch.testing.assert_close(freq, kept / kept.sum(), rtol=0, atol=0.03)  # renormalized over the kept tokens
    torch.testing.assert_close(lp, torch.log(probs)[token])  # the returned logp is the untruncated one
