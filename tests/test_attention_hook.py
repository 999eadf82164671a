"""The attention hook on a tiny Qwen2 (plain, and 4-bit NF4 + LoRA): the mass it collects while the model runs SDPA
equals the per-segment sums of eager attention's `output_attentions`, and the logits do not change."""

import pytest
import torch
from transformers import (AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM)

from minirlvr.evaluation.attention_hook import collect_attention_mass

S = 4
T = 21


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    path = tmp_path_factory.mktemp("qwen2")
    Qwen2ForCausalLM(cfg).save_pretrained(path)
    return path


def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 96, (2, T), generator=g)  # (B, T)
    attn = torch.ones(2, T, dtype=torch.long)  # (B, T)
    attn[1, :5] = 0  # left padding in the second row
    seg = torch.randint(0, S - 1, (2, T), generator=g)  # (B, T); segment S-1 left empty
    seg[attn == 0] = -1
    return ids, attn, seg


def eager_mass(model, ids, attn, seg):
    """Per-segment sums of the eager probabilities, (n_layers, B, H, T, S), and the eager logits."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.set_attn_implementation("eager")
    out = model(input_ids=ids, attention_mask=attn, output_attentions=True)
    base.set_attn_implementation("sdpa")
    onehot = torch.nn.functional.one_hot(seg.clamp(min=0), S).float() * (seg >= 0)[..., None]  # (B, T, S)
    return torch.stack([torch.einsum("bhqk,bks->bhqs", a.float(), onehot) for a in out.attentions]), out.logits


def check_against_eager(model, backend):
    ids, attn, seg = batch()
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=attn).logits  # (B, T, V), SDPA, no collection
        with collect_attention_mass(model, seg, S, backend=backend) as c:
            collected = model(input_ids=ids, attention_mask=attn).logits
        expected, eager_logits = eager_mass(model, ids, attn, seg)
    assert torch.equal(collected, plain)  # the hook leaves the layer outputs bit for bit unchanged
    # Sanity: eager is the same model (padding positions aside, where the two differ by design).
    torch.testing.assert_close(plain[0], eager_logits[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(plain[1, 5:], eager_logits[1, 5:], atol=1e-4, rtol=0)
    assert sorted(c.mass) == [0, 1]
    for layer in (0, 1):
        got = c.mass[layer]  # (B, H, T, S)
        assert got.shape == (2, 4, T, S)
        # Padding queries (row 1, first 5) see no key: eager softmaxes a fully masked row, we return 0.
        torch.testing.assert_close(got[0], expected[layer, 0], atol=1e-5, rtol=0)
        torch.testing.assert_close(got[1, :, 5:], expected[layer, 1, :, 5:], atol=1e-5, rtol=0)
        assert (got[1, :, :5] == 0).all()
    assert model.config._attn_implementation == "sdpa"  # restored on exit


def test_plain_model_matches_eager(model_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    check_against_eager(model, backend="blockwise")


def test_llama_matches_eager():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    model = LlamaForCausalLM._from_config(cfg, attn_implementation="sdpa").eval()
    check_against_eager(model, backend="blockwise")


def test_4bit_lora_model_matches_eager_with_triton_kernel(model_dir):
    from peft import LoraConfig, get_peft_model

    q4 = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa", quantization_config=q4)
    assert type(model.model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    # Random (not zero) LoRA B so the adapter really changes q and k.
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(model, lora).eval()
    check_against_eager(model, backend="triton")  # the interpreted kernel, on the hook's strided q and k


def test_chosen_layers_and_last_queries(model_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    ids, attn, seg = batch()
    with torch.no_grad():
        with collect_attention_mass(model, seg, S, layers=[1], last_queries=6) as c:
            model(input_ids=ids, attention_mask=attn)
        expected, _ = eager_mass(model, ids, attn, seg)
    assert list(c.mass) == [1]
    torch.testing.assert_close(c.mass[1], expected[1, :, :, -6:], atol=1e-5, rtol=0)  # (B, H, 6, S)


def test_errors_and_restore(model_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    ids, attn, seg = batch()
    with pytest.raises(ValueError, match="^segment_ids:.*20.*21"):
        with torch.no_grad(), collect_attention_mass(model, seg[:, :-1], S):
            model(input_ids=ids, attention_mask=attn)
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(ValueError, match=r"^layers:.*\[5\]"):
        with torch.no_grad(), collect_attention_mass(model, seg, S, layers=[1, 5]):
            model(input_ids=ids, attention_mask=attn)
    with pytest.raises(ValueError, match="^last_queries:"):
        with collect_attention_mass(model, seg, S, last_queries=0):
            pass
    with pytest.raises(ValueError, match="^model: no attention layer reported"):
        with collect_attention_mass(model, seg, S):
            pass  # no forward
    assert model.config._attn_implementation == "sdpa"
