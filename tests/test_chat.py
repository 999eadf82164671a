"""Text in, text out: complete() keeps the input order, matches the sampler one prompt at a time, switches the adapter
off when asked; load_for_inference loads a peft adapter folder and refuses one made for another base."""

import pytest
import torch

from minirlvr.engine.chat import complete, eos_token_ids
from minirlvr.engine.model import ModelError, load_for_inference, tiny_model, word_tokenizer
from minirlvr.engine.sampler import generate

WORDS = [f"w{i}" for i in range(30)]


def tiny(seed=0, hidden=64):
    tok = word_tokenizer(WORDS)
    model = tiny_model(vocab_size=len(tok), hidden_size=hidden, eos_token_id=tok.eos_token_id,
                       pad_token_id=tok.pad_token_id, init_std=0.1, seed=seed)
    return model, tok


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("base")
    model, tok = tiny()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def lora_adapter(base_folder, out, seed=0):
    from peft import LoraConfig, get_peft_model

    model, tok = load_for_inference(base_folder)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    peft_model.save_pretrained(out)
    return peft_model


PROMPTS = ["w1 w2 w3 w4 w5", "w6", {"prompt": "w7 w8"}, [{"role": "user", "content": "w9 w10 w11"}]]


def test_complete_keeps_order_and_matches_one_by_one():
    model, tok = tiny()
    out = complete(model, tok, PROMPTS, samples=1, max_new_tokens=6, batch_rows=3)
    assert len(out.texts) == 4 and all(isinstance(t, str) for t in out.texts)
    for i, p in enumerate(["w1 w2 w3 w4 w5", "w6", "w7 w8", "w9 w10 w11"]):
        ro = generate(model, [tok(p).input_ids], 1, 6, eos_token_ids(model, tok), tok.pad_token_id, 0.0)
        assert out.texts[i] == tok.decode(ro.tokens[0][ro.mask[0].bool()], skip_special_tokens=True)
        assert out.lengths[i] == int(ro.mask[0].sum())


def test_samples_are_prompt_major_and_seeded():
    model, tok = tiny()
    a = complete(model, tok, PROMPTS[:2], samples=3, max_new_tokens=5, temperature=1.0, seed=3)
    b = complete(model, tok, PROMPTS[:2], samples=3, max_new_tokens=5, temperature=1.0, seed=3)
    assert len(a.texts) == 6 and a.texts == b.texts
    assert len(set(a.texts[:3])) > 1  # sampling, not three copies of one row


def test_eos_id_zero_is_kept():
    model, tok = tiny()
    model.generation_config.eos_token_id = [0, 5]
    assert eos_token_ids(model, tok) == sorted({0, 5, tok.eos_token_id})


def test_adapter_folder_and_adapter_off(folder, tmp_path):
    trained = lora_adapter(folder, str(tmp_path / "adapter"))
    model, tok = load_for_inference(folder, adapter=str(tmp_path / "adapter"))
    base, _ = load_for_inference(folder)
    ids = torch.tensor([tok("w1 w2 w3").input_ids])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, trained.eval()(input_ids=ids).logits)
        assert not torch.allclose(model(input_ids=ids).logits, base(input_ids=ids).logits)
    on = complete(model, tok, PROMPTS, max_new_tokens=8)
    off = complete(model, tok, PROMPTS, max_new_tokens=8, adapter_off=True)
    plain = complete(base, tok, PROMPTS, max_new_tokens=8)
    assert off.texts == plain.texts and on.texts != plain.texts
    with torch.no_grad():  # the adapter is back on afterwards
        torch.testing.assert_close(model(input_ids=ids).logits, trained(input_ids=ids).logits)


def test_bad_adapter_folders(folder, tmp_path):
    with pytest.raises(ModelError, match="has no adapter_config.json"):
        load_for_inference(folder, adapter=str(tmp_path))
    other = tmp_path / "other"
    model, tok = tiny(hidden=32)
    model.save_pretrained(other)
    tok.save_pretrained(other)
    lora_adapter(str(other), str(tmp_path / "other-adapter"))
    with pytest.raises(ModelError, match="does not fit the base model"):
        load_for_inference(folder, adapter=str(tmp_path / "other-adapter"))
    with pytest.raises(ModelError, match="not a folder"):
        load_for_inference(str(tmp_path / "missing"))



def test_progress_without_a_terminal_is_plain_lines_and_off_unless_asked(monkeypatch, capsys):
    # the judge audit's and the pipeline's generations ask for progress: a log file gets lines, not a bar
    monkeypatch.setattr("minirlvr.engine.progress.PROGRESS_EVERY_S", 0.0)
    model, tok = tiny()
    complete(model, tok, PROMPTS, max_new_tokens=4, batch_rows=2, progress=True, desc="answers")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("answers: ")]
    assert [line.split()[1] for line in lines] == ["2/4", "4/4"] and "tokens/s" in lines[0]
    complete(model, tok, PROMPTS, max_new_tokens=4, batch_rows=2)
    assert capsys.readouterr().out == ""
