"""Model loading: folder checks, 4-bit NF4 + LoRA, the reference as the adapter switched off, the logits-free path."""

import pytest
import torch

from minirlvr.engine.config import make_config
from minirlvr.engine.model import (ModelError, final_hidden, lm_head_weight, load_model, load_trainable_state,
                            reference_mode, tiny_model, trainable_state, word_tokenizer)
from minirlvr.engine.sampler import positions
from minirlvr.train import sequence_logp


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    tok = word_tokenizer([f"w{i}" for i in range(40)])
    tiny_model(vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def batch(vocab, N=3, P=4, L=5):
    g = torch.Generator().manual_seed(0)
    prompt_ids = torch.randint(3, vocab, (N, P), generator=g)
    prompt_mask = torch.ones(N, P, dtype=torch.long)
    prompt_mask[0, :2] = 0  # one left-padded row
    tokens = torch.randint(3, vocab, (N, L), generator=g)
    mask = torch.ones(N, L)
    mask[1, 3:] = 0
    return prompt_ids, prompt_mask, tokens, mask


def full_logits_logp(model, prompt_ids, prompt_mask, tokens):
    """The naive way: full logits from the model's own forward, log_softmax, gather."""
    ids = torch.cat([prompt_ids, tokens], 1)
    attn = torch.cat([prompt_mask, torch.ones_like(tokens)], 1)
    logits = model(input_ids=ids, attention_mask=attn, position_ids=positions(attn)).logits.float()
    lp = torch.log_softmax(logits[:, prompt_ids.shape[1] - 1:-1], -1)
    return lp.gather(-1, tokens[..., None]).squeeze(-1)


@pytest.mark.parametrize("four_bit", [False, True])
def test_load_lora_and_logits_free_logp(folder, four_bit):
    model, tok = load_model(make_config(model=folder, load_in_4bit=four_bit, lora_r=4, lora_alpha=8))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    if four_bit:
        import bitsandbytes as bnb

        assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
        assert lm_head_weight(model).dtype == torch.float32  # the head is not quantized
    with torch.no_grad():  # move off the identity so the LoRA path is exercised
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    ids, pmask, tokens, mask = batch(len(tok))
    model.eval()
    with torch.no_grad():
        logp, _ = sequence_logp(model, ids, pmask, tokens, mask, 1.0)
        naive = full_logits_logp(model, ids, pmask, tokens)
    torch.testing.assert_close(logp, naive * mask, rtol=0, atol=1e-5)


def test_kl_zero_while_adapter_at_init_and_reference_is_adapter_off(folder):
    model, tok = load_model(make_config(model=folder, lora_r=4))
    ids, pmask, tokens, mask = batch(len(tok))
    model.eval()
    with torch.no_grad():
        logp, _ = sequence_logp(model, ids, pmask, tokens, mask, 1.0)
        with reference_mode(model):
            ref, _ = sequence_logp(model, ids, pmask, tokens, mask, 1.0)
        assert torch.equal(logp, ref)  # LoRA B = 0 at init: policy == reference, k3 KL exactly 0
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
        moved, _ = sequence_logp(model, ids, pmask, tokens, mask, 1.0)
        with reference_mode(model):
            ref2, _ = sequence_logp(model, ids, pmask, tokens, mask, 1.0)
    assert torch.equal(ref2, ref)  # the reference did not move with the adapter
    assert not torch.allclose(moved, ref)


def test_final_hidden_is_after_final_norm(folder):
    model, tok = load_model(make_config(model=folder, use_lora=False))
    ids, pmask, _, _ = batch(len(tok))
    with torch.no_grad():
        h = final_hidden(model, ids, pmask, positions(pmask))
        out = model(input_ids=ids, attention_mask=pmask, position_ids=positions(pmask), output_hidden_states=True)
    torch.testing.assert_close(h @ lm_head_weight(model).T, out.logits, rtol=0, atol=1e-5)
    assert all(p.requires_grad for p in model.parameters())  # full fine-tuning


def test_path_without_weights_and_missing_path(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="has no weights"):
        load_model(make_config(model=str(tmp_path)))
    with pytest.raises(ModelError, match="not a folder"):
        load_model(make_config(model=str(tmp_path / "nope")))
    with pytest.raises(ModelError, match="'model' is empty"):
        load_model(make_config(model=""))


def test_state_from_other_lora_shape_is_rejected(folder):
    small, _ = load_model(make_config(model=folder, lora_r=4))
    big, _ = load_model(make_config(model=folder, lora_r=8))
    with pytest.raises(ModelError, match=r"different model or LoRA shape.*lora_A.*\(4, 64\) there, \(8, 64\) here"):
        load_trainable_state(big, trainable_state(small), "ckpt-x")
    narrow, _ = load_model(make_config(model=folder, lora_r=4, lora_targets="q_proj,v_proj"))
    with pytest.raises(ModelError, match="different model or LoRA setup"):
        load_trainable_state(narrow, trainable_state(small), "ckpt-x")
    load_trainable_state(small, trainable_state(small), "ckpt-x")  # same shape: fine
