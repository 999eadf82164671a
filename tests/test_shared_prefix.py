"""The shared-prefix training pass (engine/model.py `shared_prefix_hidden`): each distinct prompt runs once and its
KV cache is gathered for the rows of its group. It must give the log-probs, entropies and gradients of the full
sequences, and fall back to them where a cache cannot be used."""

import pytest
import torch

import minirlvr.train as train_mod
from minirlvr.engine.config import make_config
from minirlvr.engine.model import base_model, load_model, prepare, shares_prefix, tiny_model
from minirlvr.engine.sampler import left_pad
from minirlvr.train import StepBatch, sequence_logp

V, G, L = 40, 3, 6
PROMPTS = [[5, 6, 7], [8, 9, 10, 11, 12], [13]]  # left padded to 5: uneven lengths


def rollouts():
    ids, pmask, _ = left_pad(PROMPTS, 0, "cpu")  # (B, P)
    N = len(PROMPTS) * G
    tokens = torch.randint(3, V, (N, L), generator=torch.Generator().manual_seed(1))  # (N, L)
    mask = torch.ones(N, L)
    mask[1, 2:] = 0  # stopped early
    mask[4, 5:] = 0
    mask[7] = 0  # a row left out of the loss (--mask_truncated)
    return ids, pmask, tokens, mask, torch.arange(N) // G


def lora_model(**kw):
    model = prepare(tiny_model(vocab_size=V, init_std=0.1), make_config(lora_r=4, lora_alpha=8, **kw))
    return moved_off_init(model)


def moved_off_init(model):
    with torch.no_grad():  # off the identity, so that the adapter changes the forward
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1, generator=torch.Generator().manual_seed(2))
    return model


def body_calls(model):
    """The shapes of input_ids the decoder body is called with, appended as it runs."""
    calls = []
    base_model(model).get_decoder().register_forward_pre_hook(
        lambda mod, args, kw: calls.append(tuple(kw["input_ids"].shape)), with_kwargs=True)
    return calls


def logp_and_grads(model, shared, chunks=None):
    """logp, entropy (N, L) and the trainable gradients of sum(logp) + sum(entropy), computed micro-batch by
    micro-batch over `chunks`, with the prompts given once (shared) or repeated per row."""
    ids, pmask, tokens, mask, prompt_of = rollouts()
    N = len(tokens)
    b = StepBatch(ids, pmask, tokens, mask, chunks or [slice(0, N)], G)
    model.zero_grad(set_to_none=True)
    lps, ents = [], []
    for c in b.chunks:
        if shared:
            lp, ent = b.logp(model, c, 0.7, entropy=True)
        else:
            lp, ent = sequence_logp(model, ids[prompt_of[c]], pmask[prompt_of[c]], tokens[c], mask[c], 0.7, True)
        (lp.sum() + ent.sum()).backward()
        lps.append(lp.detach())
        ents.append(ent.detach())
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return torch.cat(lps), torch.cat(ents), grads


def assert_same(a, b, mask):
    # fp32: the two paths differ only in the order of sums (other batch shapes, attention over a cache), rounding
    # errors of a few ulp of O(1) activations; gradients are compared relative to each tensor's largest entry
    (lp_a, ent_a, g_a), (lp_b, ent_b, g_b) = a, b
    torch.testing.assert_close(lp_a, lp_b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent_a, ent_b, rtol=1e-5, atol=1e-5)
    assert (lp_a[mask == 0] == 0).all() and (ent_a[mask == 0] == 0).all()
    assert g_a.keys() == g_b.keys() and g_a
    for n in g_a:
        scale = g_b[n].abs().max().item()
        assert scale > 0, n
        torch.testing.assert_close(g_a[n], g_b[n], rtol=1e-5, atol=1e-5 * scale, msg=n)


@pytest.mark.parametrize("kind", ["lora", "full", "4bit"])
def test_shared_prefix_equals_full_sequences(kind, tiny_folder):
    if kind == "lora":
        model = lora_model()
    elif kind == "full":
        model = prepare(tiny_model(vocab_size=V, init_std=0.1), make_config(use_lora=False))
    else:
        folder = tiny_folder([f"w{i}" for i in range(V - 3)])
        model = moved_off_init(load_model(make_config(model=folder, load_in_4bit=True, lora_r=4, lora_alpha=8))[0])
    model.train()
    calls = body_calls(model)
    shared = logp_and_grads(model, shared=True)
    P = max(map(len, PROMPTS))
    assert calls == [(len(PROMPTS), P), (len(PROMPTS) * G, L - 1)]  # the prompts once, then the completions
    assert_same(shared, logp_and_grads(model, shared=False), rollouts()[3])
    with torch.no_grad():  # the reference pass: eval mode, no gradients
        model.eval()
        ids, pmask, tokens, mask, prompt_of = rollouts()
        torch.testing.assert_close(sequence_logp(model, ids, pmask, tokens, mask, 1.0, prompt_of=prompt_of)[0],
                                   sequence_logp(model, ids[prompt_of], pmask[prompt_of], tokens, mask, 1.0)[0],
                                   rtol=1e-5, atol=1e-5)


def test_micro_batches_that_split_groups():
    model = lora_model().train()
    N = len(PROMPTS) * G
    calls = body_calls(model)
    # 4 rows: a whole group and one row of the next; 4 rows: the rest of it and one row; 1 row alone (nothing is
    # shared: one full call)
    split = logp_and_grads(model, shared=True, chunks=[slice(0, 4), slice(4, 8), slice(8, 12)])
    assert calls == [(2, 5), (4, L - 1), (2, 5), (4, L - 1), (1, 5 + L)]
    assert_same(split, logp_and_grads(model, shared=False, chunks=[slice(0, N)]), rollouts()[3])


def test_gradient_checkpointing_runs_full_sequences(monkeypatch):
    model = lora_model(gradient_checkpointing=True).train()
    assert not shares_prefix(model)  # transformers drops the cache of checkpointed layers while taking gradients
    with torch.no_grad():
        assert shares_prefix(model)  # no backward to replay: the reference pass still shares
    calls = body_calls(model)
    N = len(PROMPTS) * G
    checkpointed = logp_and_grads(model, shared=True)
    assert calls == [(N, 5 + L)]  # no prefix call that would be thrown away
    plain = logp_and_grads(model, shared=False)
    assert_same(checkpointed, plain, rollouts()[3])
    # a body that leaves the cache empty is caught after the prefix call, and full sequences run instead
    monkeypatch.setattr(train_mod, "shares_prefix", lambda model: True)
    assert_same(logp_and_grads(model, shared=True), plain, rollouts()[3])


def test_a_body_without_a_cache_argument_runs_full_sequences():
    model = lora_model().train()
    body = base_model(model).get_decoder()

    class NoCacheBody(type(body)):
        def forward(self, input_ids=None, attention_mask=None, position_ids=None, use_cache=None):
            return super().forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                   use_cache=False)

    plain = logp_and_grads(model, shared=False)
    body.__class__ = NoCacheBody
    assert not shares_prefix(model)
    assert_same(logp_and_grads(model, shared=True), plain, rollouts()[3])
