"""Per-token log-probabilities from final hidden states and the LM head (work in progress: reference only).

The fused Triton kernel (issue 3) replaces the body of `token_logprobs`; its signature is fixed.
"""

import torch


def token_logprobs_reference(hidden, weight, targets, temperature=1.0, return_entropy=False):
    """Plain PyTorch: full logits, log_softmax, gather. hidden (N, D), weight (V, D), targets (N,) -> (N,) fp32."""
    logits = (hidden.float() @ weight.float().T) / temperature  # (N, V)
    logsm = torch.log_softmax(logits, dim=-1)  # (N, V)
    logp = logsm.gather(-1, targets[:, None]).squeeze(-1)  # (N,)
    if not return_entropy:
        return logp
    entropy = -(logsm.exp() * logsm).sum(-1)  # (N,)
    return logp, entropy.detach()


def token_logprobs(hidden, weight, targets, temperature=1.0, return_entropy=False):
    return token_logprobs_reference(hidden, weight, targets, temperature, return_entropy)
