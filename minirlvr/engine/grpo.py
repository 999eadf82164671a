"""GRPO's math as pure functions on tensors: group-normalized advantages and the clipped loss with a k3 KL.

    adv   = (r - mean_group(r)) / (std_group(r) + eps)        GRPO (Shao et al. 2024, arXiv 2402.03300)
            (r - mean_group(r))                              scale=False: Dr. GRPO (Liu et al. 2025, 2503.20783)
    ratio = exp(logp - old_logp)
    pg    = -min(ratio * adv, clip(ratio, 1 - clip_low, 1 + clip_high) * adv)   clip-higher: DAPO (2503.14476)
    kl    = exp(ref_logp - logp) - (ref_logp - logp) - 1     k3 estimator (Schulman 2020), >= 0, unbiased
    loss  = sum(mask * (pg + beta * kl)) / n_tokens           token-level aggregation: DAPO

No model, no sampling, no optimizer here. The normalizer is passed in (`denom`) so that a batch split into
micro-batches gives exactly the loss of the whole batch: the caller computes it once over all N rollouts.
"""

from dataclasses import dataclass

import torch


def group_advantages(rewards, group_size, scale=True, eps=1e-4):
    """rewards (N,) prompt-major (row n belongs to group n // G) -> adv (N,). A constant group gets exactly 0."""
    r = rewards.float().view(-1, group_size)  # (B, G)
    adv = r - r.mean(1, keepdim=True)  # (B, G)
    if scale:
        adv = adv / (r.std(1, keepdim=True, unbiased=False) + eps)  # (B, G)
    return adv.flatten()  # (N,)


def loss_denominator(mask, loss_agg="token"):
    """The normalizer for the whole batch: number of trained tokens ("token") or of sequences ("seq")."""
    return mask.sum().clamp(min=1.0) if loss_agg == "token" else torch.tensor(float(mask.shape[0]))


@dataclass
class LossStats:
    pg: torch.Tensor  # scalar, policy-gradient part (already divided by denom)
    kl: torch.Tensor  # scalar, sum of per-token k3 over the mask (for a batch mean, divide by the token count)
    clipped: torch.Tensor  # scalar, number of trained tokens where the clip removed the gradient


def grpo_loss(logp, old_logp, ref_logp, adv, mask, denom, clip_low=0.2, clip_high=0.28, beta=0.001,
              loss_agg="token"):
    """logp (N, L) with grad; old_logp, ref_logp (N, L) without; adv (N,); mask (N, L). ref_logp may be None
    when beta == 0. Returns (loss scalar, LossStats)."""
    ratio = torch.exp(logp - old_logp)  # (N, L)
    a = adv[:, None]  # (N, 1)
    unclipped = ratio * a  # (N, L)
    clipped = ratio.clamp(1.0 - clip_low, 1.0 + clip_high) * a  # (N, L)
    pg = -torch.minimum(unclipped, clipped)  # (N, L)
    per_token = pg
    kl = torch.zeros_like(logp)  # (N, L)
    if beta > 0:
        d = ref_logp - logp  # (N, L)
        kl = torch.exp(d) - d - 1.0  # (N, L)
        per_token = pg + beta * kl
    if loss_agg == "token":
        loss = (per_token * mask).sum() / denom
    else:  # "seq": mean over each sequence's tokens, then sum over sequences / number of sequences
        loss = ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1.0)).sum() / denom
    with torch.no_grad():
        was_clipped = (clipped < unclipped) & (mask > 0)  # the min picked the clipped, constant branch
        stats = LossStats(pg=(pg * mask).sum() / denom, kl=(kl * mask).sum(), clipped=was_clipped.sum().float())
    return loss, stats
