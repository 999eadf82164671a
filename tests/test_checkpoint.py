"""What training leaves behind loads elsewhere: the final adapter (and each checkpoint) is a standard peft folder
with the tokenizer beside it that reproduces the trained policy's log-probs exactly; full fine-tuning leaves a
save_pretrained model folder; `run.py attention --adapter` accepts the folder."""

import json
import os

import pytest
import torch
from transformers import AutoModelForCausalLM

from minirlvr.commands import attention as attention_cmd
from minirlvr.engine.config import make_config
from minirlvr.engine.model import load_for_inference, tiny_model, word_tokenizer
from minirlvr.train import train

WORDS = [f"w{i}" for i in range(20)]
RECORDS = [{"key": i, "prompt": " ".join(f"w{(3 * i + j) % 20}" for j in range(3))} for i in range(6)]


def reward(records, completions):
    r = [c.count("w1") / max(1, len(c.split())) for c in completions]
    return r, {"w1": r}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("base")
    tok = word_tokenizer(WORDS + ["user", "assistant"])
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}"
                         "{% if add_generation_prompt %}assistant {% endif %}")
    tiny_model(vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, init_std=0.1,
               seed=2).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def cfg(tmp_path, folder, **kw):
    base = dict(model=folder, out_dir=str(tmp_path / "run"), steps=3, prompts_per_step=2, group_size=4,
                max_new_tokens=6, lr=0.05, lora_r=4, lora_alpha=8, progress=False, log_every=0, rollouts_every=0,
                ckpt_every=1, keep_ckpts=2)
    base.update(kw)
    return make_config(**base)


def logits(model, tok):
    ids = torch.tensor([tok("w1 w2 w3 w4 w5").input_ids])
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits


@pytest.mark.parametrize("four_bit", [False, True])
def test_adapter_folder_reproduces_the_trained_policy(tmp_path, folder, four_bit):
    from peft import PeftModel

    res = train(cfg(tmp_path, folder, load_in_4bit=four_bit), reward, records=RECORDS)
    assert res.policy_dir == os.path.join(res.run_dir, "adapter")
    files = set(os.listdir(res.policy_dir))
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= files
    trained = logits(res.model, res.tokenizer)
    if four_bit:
        model, tok = load_for_inference(folder, adapter=res.policy_dir, load_in_4bit=True)
    else:
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(folder), res.policy_dir)
        tok = res.tokenizer
    assert torch.equal(logits(model, tok), trained)
    with model.disable_adapter():
        assert not torch.equal(logits(model, tok), trained)  # the adapter is what makes the difference
    # each kept checkpoint is an adapter folder too; the last one is the final policy
    ckpts = sorted(os.listdir(os.path.join(res.run_dir, "checkpoints")))
    assert ckpts == ["step-000002", "step-000003"]
    last, _ = load_for_inference(folder, adapter=os.path.join(res.run_dir, "checkpoints", ckpts[-1]),
                                 load_in_4bit=four_bit)
    assert torch.equal(logits(last, tok), trained)
    earlier, _ = load_for_inference(folder, adapter=os.path.join(res.run_dir, "checkpoints", ckpts[0]),
                                    load_in_4bit=four_bit)
    assert not torch.equal(logits(earlier, tok), trained)


def test_full_fine_tuning_leaves_a_model_folder(tmp_path, folder):
    res = train(cfg(tmp_path, folder, use_lora=False, lr=1e-3, ckpt_every=0), reward, records=RECORDS)
    assert res.policy_dir == os.path.join(res.run_dir, "model")
    loaded = AutoModelForCausalLM.from_pretrained(res.policy_dir)
    assert torch.equal(logits(loaded, res.tokenizer), logits(res.model, res.tokenizer))


def test_attention_report_accepts_the_adapter(tmp_path, folder):
    res = train(cfg(tmp_path, folder, ckpt_every=0), reward, records=RECORDS)
    data = tmp_path / "att.jsonl"
    data.write_text(json.dumps({"key": 1, "prompt": "w1 w2 w3 w4", "constraint_spans": [[6, 11]],
                                "response": "w5 w6 w7"}) + "\n")
    out = tmp_path / "att"
    attention_cmd.main(["--model", folder, "--adapter", res.policy_dir, "--data", str(data), "--out", str(out)])
    scores = json.load(open(out / "scores.json"))
    assert scores["checkpoints"][0]["adapter"] == res.policy_dir and scores["records"] == 1
