"""Engine invariants that must fail when the loop is wrong: every test watches what train() hands to the loss
(by wrapping `grpo_loss`, `generate` and the reward) and checks it against an independent computation.

Breakages each test is meant to catch (checked by making them on purpose): completions paired with the wrong
prompts, training log-probs at the wrong temperature, tokens after EOS trained, advantages normalized over the
batch instead of per group, old_logp from the reference, reference passes with dropout, the scheduler stepped on
skipped steps, a partial update kept after a non-finite epoch, a resume that repeats logs or drifts."""

import json
import os
import random

import numpy as np
import pytest
import torch

import minirlvr.train as train_mod
from minirlvr.engine.config import make_config
from minirlvr.data import DataError
from minirlvr.engine.model import ModelError, tiny_model, trainable_state, word_tokenizer
from minirlvr.engine.sampler import positions
from minirlvr.train import train

WORDS = [f"w{i}" for i in range(20)]  # + pad, eos, unk: EOS is likely enough that some rows stop early
RECORDS = [{"key": i, "prompt": " ".join(f"w{(3 * i + j) % 20}" for j in range(1 + i % 4))} for i in range(9)]


def overlap_reward(records, completions):
    """Depends on the prompt: the share of completion words that also occur in the prompt."""
    r = [len([w for w in c.split() if w in rec["prompt"].split()]) / max(1, len(c.split()))
         for rec, c in zip(records, completions)]
    return r, {"overlap": r}


def tiny(seed=0, **config):
    tok = word_tokenizer(WORDS)
    model = tiny_model(vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                       init_std=0.1, seed=seed)
    for k, v in config.items():  # e.g. attention_dropout: the config and every module that copied it at init
        setattr(model.config, k, v)
        for m in model.modules():
            if hasattr(m, k):
                setattr(m, k, v)
    return model, tok


def cfg(tmp_path, name="run", **kw):
    base = dict(out_dir=str(tmp_path / name), steps=3, prompts_per_step=3, group_size=4, max_new_tokens=8,
                lr=0.05, micro_batch_size=5, lora_r=4, lora_alpha=8, progress=False, log_every=0, rollouts_every=0,
                ckpt_every=0, beta=0.1, temperature=0.7)
    base.update(kw)
    return make_config(**base)


class Spy:
    """Records what the loop passes to the sampler, the reward and the loss."""

    def __init__(self, monkeypatch, reward=overlap_reward):
        self.rollouts, self.loss_calls, self.reward_calls = [], [], []
        real_generate, real_loss = train_mod.generate, train_mod.grpo_loss

        def generate(*args, **kwargs):
            ro = real_generate(*args, **kwargs)
            self.rollouts.append(ro)
            return ro

        def grpo_loss(logp, old_logp, ref_logp, adv, mask, *args, **kwargs):
            self.loss_calls.append({"step": len(self.rollouts), "logp": logp.detach().clone(),
                                    "old": old_logp.clone(), "ref": None if ref_logp is None else ref_logp.clone(),
                                    "adv": adv.clone(), "mask": mask.clone()})
            return real_loss(logp, old_logp, ref_logp, adv, mask, *args, **kwargs)

        def reward_fn(records, completions):
            self.reward_calls.append((list(records), list(completions)))
            return reward(records, completions)

        self.reward_fn = reward_fn
        monkeypatch.setattr(train_mod, "generate", generate)
        monkeypatch.setattr(train_mod, "grpo_loss", grpo_loss)

    def step(self, step, key, epoch=0, epochs=1):
        """The tensor `key` of one step and epoch, the micro-batches concatenated back to (N, ...)."""
        calls = [c for c in self.loss_calls if c["step"] == step]
        per_epoch = len(calls) // epochs
        return torch.cat([c[key] for c in calls[epoch * per_epoch:(epoch + 1) * per_epoch]])


def full_logits_logp(model, ro, G, temperature):
    """Independent of the engine's path: the model's own full logits, log_softmax, gather. Eval mode."""
    ids = torch.cat([ro.prompt_ids.repeat_interleave(G, 0), ro.tokens], 1)
    attn = torch.cat([ro.prompt_mask.repeat_interleave(G, 0), ro.mask.long()], 1)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attn, position_ids=positions(attn)).logits.float()
    lp = torch.log_softmax(logits[:, ro.prompt_ids.shape[1] - 1:-1] / temperature, -1)
    return lp.gather(-1, ro.tokens[..., None]).squeeze(-1) * ro.mask  # (N, L)


def test_loss_sees_each_sampled_row_with_its_prompt_temperature_mask_and_group_advantage(tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    model, tok = tiny()
    res = train(cfg(tmp_path), spy.reward_fn, records=RECORDS, model=model, tokenizer=tok)
    G = 4
    assert any(ro.stopped.any() and not ro.stopped.all() for ro in spy.rollouts)  # some rows end early on EOS
    for step, ro in enumerate(spy.rollouts, 1):
        records, texts = spy.reward_calls[step - 1]
        # the reward sees each completion next to the record it was sampled for
        for n, rec in enumerate(records):
            prompt = ro.prompt_ids[n // G][ro.prompt_mask[n // G].bool()]
            assert tok.decode(prompt) == rec["prompt"]
            assert texts[n] == tok.decode(ro.tokens[n][ro.mask[n].bool()], skip_special_tokens=True)
        # the loss trains exactly the sampled tokens (EOS included, nothing after it)
        assert torch.equal(spy.step(step, "mask"), ro.mask)
        # the loss's log-probs are the sampler's, at the sampling temperature (LoRA dropout 0: same weights)
        torch.testing.assert_close(spy.step(step, "logp"), ro.logp, rtol=0, atol=3e-5)
        # advantages: rewards normalized within each group of G, by hand
        r = torch.tensor(overlap_reward(records, texts)[0]).view(-1, G)
        adv = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True, unbiased=False) + 1e-4)).flatten()
        torch.testing.assert_close(spy.step(step, "adv"), adv)
        assert (r.std(1) > 0).any()  # at least one group with a signal, so the normalization is exercised
        # the reference is the adapter switched off, in eval mode
        with res.model.disable_adapter():
            ref = full_logits_logp(res.model, ro, G, 0.7)
        torch.testing.assert_close(spy.step(step, "ref"), ref, rtol=0, atol=3e-5)
    # after updates the logged KL is the k3 estimator between the policy's and the reference's log-probs
    last = len(spy.rollouts)
    logp, ref, mask = spy.step(last, "logp"), spy.step(last, "ref"), spy.step(last, "mask")
    d = ref - logp
    k3 = ((torch.exp(d) - d - 1) * mask).sum() / mask.sum()
    assert k3 > 1e-4  # the adapter has moved away from the reference
    assert res.history[-1]["kl"] == pytest.approx(k3.item(), rel=1e-4)


def test_ppo_epochs_old_logp_is_first_epoch_and_reference_has_no_dropout(tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    model, tok = tiny(attention_dropout=0.3)  # dropout in the base: a reference pass in train mode would show it
    res = train(cfg(tmp_path, epochs_per_step=2, lora_dropout=0.3, lr=0.02), spy.reward_fn, records=RECORDS,
                model=model, tokenizer=tok)
    for step, ro in enumerate(spy.rollouts, 1):
        first, second = spy.step(step, "logp", 0, 2), spy.step(step, "logp", 1, 2)
        assert torch.equal(spy.step(step, "old", 0, 2), first)  # ratio exactly 1 in the first epoch, dropout incl.
        assert torch.equal(spy.step(step, "old", 1, 2), first)  # the later epoch is measured against it
        assert not torch.equal(second, first)  # the first epoch's update (and fresh dropout) moved it
        with res.model.disable_adapter():
            res.model.eval()
            ref = full_logits_logp(res.model, ro, 4, 0.7)
        torch.testing.assert_close(spy.step(step, "ref", 0, 2), ref, rtol=0, atol=3e-5)


def test_logged_learning_rate_is_the_one_used_and_skipped_steps_do_not_advance_it(tmp_path, monkeypatch):
    model, tok = tiny()
    res = train(cfg(tmp_path, "warm", steps=4, warmup_steps=2, lr=3e-3), overlap_reward, records=RECORDS,
                model=model, tokenizer=tok)
    assert [h["lr"] for h in res.history] == pytest.approx([1e-3, 2e-3, 3e-3, 3e-3])

    real, calls = train_mod.grpo_loss, []

    def nan_at_step_2(*args, **kwargs):  # 3 x 4 rows in micro-batches of 5: 3 calls per step
        calls.append(1)
        loss, st = real(*args, **kwargs)
        return (loss * float("nan") if 4 <= len(calls) <= 6 else loss), st

    monkeypatch.setattr(train_mod, "grpo_loss", nan_at_step_2)
    states = []
    model, tok = tiny()
    res = train(cfg(tmp_path, "nan", steps=4, warmup_steps=2, lr=3e-3, eval_every=1), overlap_reward,
                records=RECORDS, model=model, tokenizer=tok,
                on_step=lambda step, m, t: states.append(trainable_state(m)) or None)
    hist = [h for h in res.history if h["step"] > 0]
    assert [h["skipped"] for h in hist] == [False, True, False, False]
    assert [h["lr"] for h in hist] == pytest.approx([1e-3, 2e-3, 2e-3, 3e-3])  # the skipped update is not counted
    after1, after2, after3 = states[1], states[2], states[3]
    assert all(torch.equal(after1[k], after2[k]) for k in after1)  # step 2 changed nothing
    assert not all(torch.equal(after2[k], after3[k]) for k in after2)


def test_non_finite_later_epoch_undoes_the_whole_step(tmp_path, monkeypatch):
    real, calls = train_mod.grpo_loss, []

    def nan_in_second_epoch_of_step_2(*args, **kwargs):  # 3 calls per epoch, 2 epochs per step
        calls.append(1)
        loss, st = real(*args, **kwargs)
        return (loss * float("nan") if 10 <= len(calls) <= 12 else loss), st

    monkeypatch.setattr(train_mod, "grpo_loss", nan_in_second_epoch_of_step_2)
    states = []
    model, tok = tiny()
    res = train(cfg(tmp_path, steps=3, epochs_per_step=2, eval_every=1, warmup_steps=3), overlap_reward,
                records=RECORDS, model=model, tokenizer=tok,
                on_step=lambda step, m, t: states.append(trainable_state(m)) or None)
    hist = [h for h in res.history if h["step"] > 0]
    assert [h["skipped"] for h in hist] == [False, True, False]
    assert all(torch.equal(states[1][k], states[2][k]) for k in states[1])  # the first epoch's update was undone
    assert hist[2]["lr"] == pytest.approx(hist[1]["lr"])  # and the schedule did not count it


def test_crash_between_checkpoints_then_resume_equals_a_straight_run(tmp_path):
    def on_step(step, model, tok):  # a callback that draws from every global random stream
        return {"noise": float(torch.rand(1)) + random.random() + float(np.random.rand())}

    common = dict(steps=5, ckpt_every=2, epochs_per_step=2, lora_dropout=0.1, eval_every=2, rollouts_every=1,
                  lr=0.02)
    model, tok = tiny()
    straight = train(cfg(tmp_path, "straight", **common), overlap_reward, on_step=on_step, records=RECORDS,
                     model=model, tokenizer=tok)

    calls = []

    def crash_in_step_4(records, completions):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # killed after step 3 was logged, before the next checkpoint
        return overlap_reward(records, completions)

    model, tok = tiny()
    with pytest.raises(KeyboardInterrupt):
        train(cfg(tmp_path, "split", **common), crash_in_step_4, on_step=on_step, records=RECORDS, model=model,
              tokenizer=tok)
    model, tok = tiny()
    resumed = train(cfg(tmp_path, "split", resume=True, **common), overlap_reward, on_step=on_step,
                    records=RECORDS, model=model, tokenizer=tok)
    a, b = trainable_state(straight.model), trainable_state(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    for name in ("metrics.jsonl", "rollouts.jsonl"):
        rows = [json.loads(line) for line in open(os.path.join(resumed.run_dir, name))]
        straight_rows = [json.loads(line) for line in open(os.path.join(straight.run_dir, name))]
        assert [r["step"] for r in rows] == [r["step"] for r in straight_rows]  # no step logged twice
    assert [h["step"] for h in resumed.history] == [0, 1, 2, 3, 4, 5]
    assert [h.get("reward") for h in resumed.history] == [h.get("reward") for h in straight.history]


def test_extending_a_finished_run_equals_one_long_run_whatever_on_step_draws(tmp_path):
    def on_step(step, model, tok):  # the final evaluation of the short run draws random numbers
        return {"noise": float(torch.rand(1)) + random.random() + float(np.random.rand())}

    common = dict(lora_dropout=0.2, lr=0.02, ckpt_every=2)
    model, tok = tiny()
    long = train(cfg(tmp_path, "long", steps=4, **common), overlap_reward, on_step=on_step, records=RECORDS,
                 model=model, tokenizer=tok)
    model, tok = tiny()
    train(cfg(tmp_path, "short", steps=2, **common), overlap_reward, on_step=on_step, records=RECORDS, model=model,
          tokenizer=tok)
    model, tok = tiny()
    extended = train(cfg(tmp_path, "short", steps=4, resume=True, **common), overlap_reward, on_step=on_step,
                     records=RECORDS, model=model, tokenizer=tok)
    a, b = trainable_state(long.model), trainable_state(extended.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_mask_truncated_leaves_cut_samples_out_of_the_loss(tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    model, tok = tiny()
    train(cfg(tmp_path, steps=1, mask_truncated=True), spy.reward_fn, records=RECORDS, model=model, tokenizer=tok)
    ro = spy.rollouts[0]
    assert ro.stopped.any() and not ro.stopped.all()
    assert torch.equal(spy.step(1, "mask"), ro.mask * ro.stopped[:, None])


def test_lora_on_the_lm_head_is_refused(tmp_path):
    model, tok = tiny()
    with pytest.raises(ModelError, match="adapter on the LM head"):
        train(cfg(tmp_path, lora_targets="q_proj,lm_head"), overlap_reward, records=RECORDS, model=model,
              tokenizer=tok)


def test_records_are_validated_even_in_memory(tmp_path):
    model, tok = tiny()
    short = [{"prompt": "w1", "instruction_id_list": ["keywords:existence", "punctuation:no_comma"],
              "kwargs": [{"keywords": ["w1"]}]}]
    with pytest.raises(DataError, match=r"records\[0\]: field 'kwargs'"):
        train(cfg(tmp_path), records=short, model=model, tokenizer=tok)
    unknown = [{"prompt": "w1", "instruction_id_list": ["keywords:no_such_thing"], "kwargs": [{}]}]
    with pytest.raises(DataError, match=r"records\[0\].*unknown instruction id 'keywords:no_such_thing'"):
        train(cfg(tmp_path), records=unknown, model=model, tokenizer=tok)
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "w1"}\n\n{"prompt": "w2", "instruction_id_list": ["keywords:existence"], '
                    '"kwargs": [{"keywords": 3}]}\n')
    with pytest.raises(DataError, match=r"d.jsonl:3: .*'keywords' must be a non-empty list"):
        train(cfg(tmp_path, data=str(data)), model=model, tokenizer=tok)
    data.write_text('{"prompt": "w1"}\n')
    with pytest.raises(DataError, match="--reward=soft: no record in --data=.*d.jsonl has soft_constraints"):
        train(cfg(tmp_path, data=str(data), reward="soft"), model=model, tokenizer=tok)
