"""Collect per-segment attention mass from a Hugging Face decoder while it runs its normal SDPA attention.

Transformers dispatches every attention layer through `ALL_ATTENTION_FUNCTIONS[config._attn_implementation]`
(https://huggingface.co/docs/transformers/en/attention_interface), handing it the post-RoPE query and key states.
We register one more entry, "minirlvr_sdpa_mass": transformers' own `sdpa_attention_forward`, plus, while a
collector is active and the layer is one it asked for, `attention_mass` on those same query and key states. The
layer output is SDPA's unchanged, so logits are identical with and without collection, and nothing of size
(T x T) is ever formed. Works for any decoder that goes through the attention interface (Qwen2, Llama, ...),
4-bit and LoRA included, since quantization and adapters live in the projections, before the hook.

    with collect_attention_mass(model, segment_ids, num_segments=4) as c:
        model(input_ids)
    c.mass[layer]  # (B, H, Tq, S) fp32 on CPU

`segment_ids` (B, T) must give -1 to padding keys (where the attention mask is 0), so that masked keys get no
probability, exactly as in the model.

Deliberately not handled: sliding-window layers and logit softcapping (an error, not a silent wrong answer),
models that bypass the attention interface (an error: no layer reported), gradients. Tested on Qwen2 and Llama.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

from minirlvr.kernels.attention import attention_mass

NAME = "minirlvr_sdpa_mass"


@dataclass
class MassCollector:
    segment_ids: torch.Tensor  # (B, T) int, -1 on padding
    num_segments: int
    layers: tuple | None = None  # None: every layer
    last_queries: int | None = None  # only the last n queries (e.g. the response); None: all
    backend: str | None = None  # attention_mass backend; None: its default for the device
    mass: dict = field(default_factory=dict)  # layer index -> (B, H, Tq, S) fp32 on CPU


_active = None  # the collector of the `collect_attention_mass` block being run, if any


def _sdpa_with_mass(module, query, key, value, attention_mask, **kwargs):
    out = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    c = _active
    layer = getattr(module, "layer_idx", None)
    if c is None or (c.layers is not None and layer not in c.layers):
        return out
    if layer is None:
        raise ValueError(f"model: attention module {type(module).__name__} has no layer_idx to file its mass under")
    if kwargs.get("sliding_window") is not None or kwargs.get("softcap") is not None:
        raise ValueError(f"model: layer {layer} uses a sliding window or softcapping, which attention_mass ignores")
    if key.shape[2] != c.segment_ids.shape[1]:
        raise ValueError(f"segment_ids: length {c.segment_ids.shape[1]} does not match the {key.shape[2]} keys "
                         f"of layer {layer}")
    q = query if c.last_queries is None else query[:, :, -c.last_queries:]  # (B, H, Tq, d)
    seg = c.segment_ids.to(key.device)  # (B, T)
    c.mass[layer] = attention_mass(q.detach(), key.detach(), seg, c.num_segments, causal=True,
                                   scale=kwargs.get("scaling"), backend=c.backend).cpu()  # (B, H, Tq, S)
    return out


def register():
    """Make NAME a valid `attn_implementation` (idempotent): our attention function, SDPA's mask."""
    AttentionInterface.register(NAME, _sdpa_with_mass)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)


def _hf_model(model):
    """The transformers model under a peft wrapper, or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@contextmanager
def collect_attention_mass(model, segment_ids, num_segments, layers=None, last_queries=None, backend=None):
    """Within the block, forward passes of `model` also record attention mass; the previous attention
    implementation is restored on exit. Yields a MassCollector whose `.mass` fills during the forward."""
    global _active
    if _active is not None:
        raise RuntimeError("collect_attention_mass blocks cannot be nested")
    if not isinstance(segment_ids, torch.Tensor) or segment_ids.dim() != 2:
        raise ValueError(f"segment_ids: expected a (B, T) tensor, got {getattr(segment_ids, 'shape', segment_ids)}")
    if last_queries is not None and not (isinstance(last_queries, int) and 0 < last_queries <= segment_ids.shape[1]):
        raise ValueError(f"last_queries: expected an int in [1, {segment_ids.shape[1]}], got {last_queries!r}")
    register()
    hf = _hf_model(model)
    previous = hf.config._attn_implementation
    hf.set_attn_implementation(NAME)
    collector = MassCollector(segment_ids, num_segments, tuple(layers) if layers is not None else None,
                              last_queries, backend)
    _active = collector
    try:
        yield collector
    finally:
        _active = None
        hf.set_attn_implementation(previous)
    if not collector.mass:
        raise ValueError("model: no attention layer reported (run a forward inside the block; models whose "
                         "attention bypasses transformers' attention interface cannot be hooked)")
    if collector.layers is not None and (missing := set(collector.layers) - set(collector.mass)):
        raise ValueError(f"layers: no attention seen for layers {sorted(missing)} (the model has "
                         f"{hf.config.num_hidden_layers} layers)")
