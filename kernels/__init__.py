"""Triton kernels, imported as `minirlvr.kernels` (never as a top-level `kernels`).

Each kernel lives in one file beside its plain-PyTorch reference, which is the specification, the CPU
fallback and the test oracle.
"""

from minirlvr.kernels.logprobs import token_logprobs, token_logprobs_reference
from minirlvr.kernels.attention import attention_mass, attention_mass_reference

__all__ = ["token_logprobs", "token_logprobs_reference", "attention_mass", "attention_mass_reference"]
