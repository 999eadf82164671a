"""GRPO math: advantages, clipped loss, k3 KL, aggregation. Pure tensors, no model."""

import math

import pytest
import torch

from minirlvr.engine.grpo import group_advantages, grpo_loss, loss_denominator


def batch(N=6, L=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    logp = (-torch.rand(N, L, generator=g) * 3).requires_grad_(True)  # (N, L)
    old = logp.detach() + 0.1 * torch.randn(N, L, generator=g)
    ref = logp.detach() + 0.3 * torch.randn(N, L, generator=g)
    mask = (torch.rand(N, L, generator=g) > 0.3).float()
    mask[:, 0] = 1
    adv = torch.randn(N, generator=g)
    return logp, old, ref, adv, mask


def test_advantages_hand_computed():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 4.0, 2.0, 4.0])
    adv = group_advantages(r, 4, scale=True, eps=0.0)
    std = math.sqrt(0.25 * 0.75)  # population std of [1, 0, 0, 0]
    expect = torch.tensor([0.75 / std, -0.25 / std, -0.25 / std, -0.25 / std, -1, 1, -1, 1])
    torch.testing.assert_close(adv, expect)
    torch.testing.assert_close(group_advantages(r, 4, scale=False), torch.tensor([0.75, -.25, -.25, -.25, -1, 1, -1, 1]))


def test_constant_group_zero_advantage_and_zero_gradient():
    r = torch.tensor([0.5, 0.5, 0.5, 1.0, 0.0, 1.0])  # group 0 constant, group 1 not
    adv = group_advantages(r, 3)
    assert torch.equal(adv[:3], torch.zeros(3))
    logp, old, ref, _, mask = batch(N=6)
    loss, _ = grpo_loss(logp, old, ref, adv, mask, loss_denominator(mask), beta=0.0)
    loss.backward()
    assert torch.equal(logp.grad[:3], torch.zeros_like(logp.grad[:3]))
    assert logp.grad[3:].abs().sum() > 0  # the other group does learn


def test_kl_zero_when_policy_is_reference_and_k3_formula():
    logp, old, ref, adv, mask = batch()
    _, st = grpo_loss(logp, old, logp.detach(), adv, mask, loss_denominator(mask), beta=0.1)
    assert st.kl.item() == 0.0
    _, st = grpo_loss(logp, old, ref, adv, mask, loss_denominator(mask), beta=0.1)
    d = ref - logp.detach()
    expect = ((torch.exp(d) - d - 1) * mask).sum()
    torch.testing.assert_close(st.kl, expect)
    assert st.kl.item() > 0


def test_on_policy_clip_inactive_and_gradient_is_plain_pg():
    logp, _, _, adv, mask = batch()
    denom = loss_denominator(mask)
    loss, st = grpo_loss(logp, logp.detach(), None, adv, mask, denom, beta=0.0)
    assert st.clipped.item() == 0
    loss.backward()
    # d/dlogp of -ratio * adv at ratio = 1 is -adv, per trained token, over the token count
    torch.testing.assert_close(logp.grad, -adv[:, None] * mask / denom)


def test_clip_higher_is_asymmetric():
    logp = torch.zeros(1, 3, requires_grad=True)
    old = torch.log(torch.tensor([[1 / 1.25, 1 / 1.3, 1 / 0.75]]))  # ratios 1.25, 1.3, 0.75
    mask = torch.ones(1, 3)
    for sign, grads_zero in ((1.0, [False, True, False]), (-1.0, [False, False, True])):
        logp.grad = None
        loss, st = grpo_loss(logp, old, None, torch.tensor([sign]), mask, loss_denominator(mask),
                             clip_low=0.2, clip_high=0.28, beta=0.0)
        loss.backward()
        # adv > 0: ratio 1.25 is inside 1 + 0.28 (clip-higher), 1.3 is clipped; adv < 0: 0.75 is below 1 - 0.2
        assert [g == 0 for g in logp.grad[0].tolist()] == grads_zero
        assert st.clipped.item() == 1


def test_masked_tokens_get_no_gradient():
    logp, old, ref, adv, mask = batch()
    with torch.no_grad():
        logp[mask == 0] = -50.0  # garbage where nothing was generated
    loss, _ = grpo_loss(logp, old, ref, adv, mask, loss_denominator(mask), beta=0.01)
    loss.backward()
    assert torch.equal(logp.grad[mask == 0], torch.zeros_like(logp.grad[mask == 0]))
    assert torch.isfinite(loss)


@pytest.mark.parametrize("agg", ["token", "seq"])
def test_loss_independent_of_micro_batch_split(agg):
    logp, old, ref, adv, mask = batch(N=7, L=6)
    denom = loss_denominator(mask, agg)
    full, _ = grpo_loss(logp, old, ref, adv, mask, denom, beta=0.05, loss_agg=agg)
    full.backward()
    g_full = logp.grad.clone()
    logp.grad = None
    parts = 0.0
    for c in (slice(0, 3), slice(3, 4), slice(4, 7)):
        loss, _ = grpo_loss(logp[c], old[c], ref[c], adv[c], mask[c], denom, beta=0.05, loss_agg=agg)
        loss.backward()
        parts = parts + loss.detach()
    torch.testing.assert_close(parts, full.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(logp.grad, g_full, rtol=1e-6, atol=1e-7)


def test_token_vs_seq_aggregation_differ_as_defined():
    logp, old, ref, adv, mask = batch()
    loss_t, _ = grpo_loss(logp, logp.detach(), None, adv, mask, loss_denominator(mask, "token"), beta=0.0)
    loss_s, _ = grpo_loss(logp, logp.detach(), None, adv, mask, loss_denominator(mask, "seq"), beta=0.0,
                          loss_agg="seq")
    # on-policy every token's pg is -adv: token-level weights sequences by length, seq-level does not
    torch.testing.assert_close(loss_t.detach(), -(adv * mask.sum(1)).sum() / mask.sum())
    torch.testing.assert_close(loss_s.detach(), -adv.mean())
