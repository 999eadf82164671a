"""Attention-mass extraction (work in progress: reference only; issue 4 adds the Triton kernel)."""

import math

import torch


def attention_mass_reference(q, k, segment_ids, num_segments, causal=True, scale=None):
    """q (B, H, Tq, d), k (B, Hkv, Tk, d), segment_ids (B, Tk) -> mass (B, H, Tq, S) fp32, via full softmax."""
    B, H, Tq, d = q.shape
    Hkv, Tk = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    k = k.repeat_interleave(H // Hkv, dim=1)  # (B, H, Tk, d)
    scores = (q.float() @ k.float().transpose(-1, -2)) * scale  # (B, H, Tq, Tk)
    valid = (segment_ids >= 0)[:, None, None, :]  # (B, 1, 1, Tk)
    if causal:
        qpos = torch.arange(Tq, device=q.device)[:, None] + (Tk - Tq)
        valid = valid & (torch.arange(Tk, device=q.device)[None, :] <= qpos)
    probs = torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=-1)  # (B, H, Tq, Tk)
    onehot = torch.nn.functional.one_hot(segment_ids.clamp(min=0).long(), num_segments).float()  # (B, Tk, S)
    onehot = onehot * (segment_ids >= 0)[..., None]
    return torch.einsum("bhqk,bks->bhqs", probs.nan_to_num(0.0), onehot)  # (B, H, Tq, S)


def attention_mass(q, k, segment_ids, num_segments, causal=True, scale=None):
    return attention_mass_reference(q, k, segment_ids, num_segments, causal, scale)
