"""verl's own reward path on the kit's parquet with the kit's compute_score, every score compared with the kit's
reward on the raw record. On a CPU, in a venv of its own (verl 0.9 pins transformers below 5.11):

    python3 -m venv /tmp/verlenv && . /tmp/verlenv/bin/activate
    pip install -e ".[verl]"                                     # in the checkout: verl 0.9.1, pandas, pyarrow
    python scripts/verl_reward_check.py --out /tmp/verl-check    # from the checkout or anywhere

Steps, each as verl's trainer (python -m verl.trainer.main_ppo) does it:
  1. the kit's data build (hard_only.jsonl, --n records) and integrations.verl.parquet_rows -> train.parquet;
  2. verl's trainer config (its ppo_trainer.yaml through Hydra) with the README's command-line overrides, so a
     key this verl lacks fails here;
  3. verl's RLHFDataset reads the parquet, with a byte-level tokenizer trained on the prompts (no download);
  4. --per-row completions for each row, built from the row's own kwargs so that constraints pass and fail,
     tokenized as a rollout's responses (+ EOS) after the chat-templated prompt;
  5. verl scores them with custom_reward_function.path = minirlvr/integrations/verl.py:
     verl >= 0.7.1: its RewardLoopManager, Ray actors (--workers) each running the configured reward manager
     (naive), with compute_score; whether "batch" is a registered reward manager is printed;
     verl <= 0.7.0: the trainer's reward_fn (load_reward_manager) in this process, with reward_manager=naive and
     compute_score, then reward_manager=batch and compute_score_batch;
  6. every score == reward.constraint_reward("hard", "mean") on the raw JSONL record and the completion's text
     (in float32 where verl returns only its float32 reward tensor).
Exits 1 on any difference. It runs no policy: verl's rollout needs vLLM or SGLang (CUDA), not tried here.
"""

import argparse
import json
import os
import random
import sys
import time


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for the data, the parquet file and the tokenizer")
    p.add_argument("--n", type=int, default=32, help="records (rows)")
    p.add_argument("--per-row", type=int, default=4, help="completions per row")
    p.add_argument("--workers", type=int, default=2, help="verl's reward workers (Ray actors)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def readme_overrides(train, reward_path, model, legacy):
    """The README's verl command line, the files and model replaced by this check's; verl <= 0.7.0 (legacy) keeps
    custom_reward_function at the top level."""
    where = "" if legacy else "reward."
    return [
        "algorithm.adv_estimator=grpo",
        f"data.train_files={train}", f"data.val_files={train}",
        "data.train_batch_size=64", "data.max_prompt_length=512", "data.max_response_length=256",
        f"actor_rollout_ref.model.path={model}",
        "actor_rollout_ref.model.lora_rank=16", "actor_rollout_ref.model.lora_alpha=32",
        "actor_rollout_ref.actor.optim.lr=1e-5",
        "actor_rollout_ref.actor.ppo_mini_batch_size=32", "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.actor.use_kl_loss=True", "actor_rollout_ref.actor.kl_loss_coef=0.001",
        "actor_rollout_ref.rollout.name=vllm", "actor_rollout_ref.rollout.n=8",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8",
        f"{where}custom_reward_function.path={reward_path}",
        f"{where}custom_reward_function.name=compute_score",
        "trainer.n_gpus_per_node=4", "trainer.nnodes=1", "trainer.total_epochs=1",
    ]


def verl_config(overrides):
    """verl's trainer config (ppo_trainer.yaml) composed with command-line overrides, as main_ppo's Hydra does."""
    from hydra import compose, initialize_config_dir
    import verl

    folder = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=folder, version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def completions(record, rng, k):
    """k texts from the record's own kwargs values (keywords, phrases, words) and stock pieces, so that
    constraints are met by some texts and missed by others (the check counts the distinct scores)."""
    values = []
    for kw in record["kwargs"]:
        for v in kw.values():
            values += [str(x) for x in v] if isinstance(v, list) else [str(v)] if isinstance(v, str) else []
    stock = ["Tea is warm", "a quiet walk, then home", "* one\n* two", "*a highlighted part*", "SECTION 1 notes",
             "P.S. more later", "\"quoted\"", "Is there anything else I can help with?", "the end"]
    texts = []
    for _ in range(k):
        parts = rng.sample(values + stock, rng.randint(0, min(5, len(values + stock))))
        text = " ".join(parts) if rng.random() < 0.5 else "\n\n".join(parts)
        texts.append(rng.choice([str.lower, str.upper, str.strip])(text) if parts else "")
    return texts


def inputs(args, tok, rows, raw):
    """(DataProto, records, texts): --per-row completions for each of RLHFDataset's rows, as a rollout leaves them:
    the chat-templated prompt left-padded, the response (+ EOS) right-padded, one attention mask over both."""
    import torch
    from verl import DataProto
    from verl.utils.dataset.rl_dataset import collate_fn

    rng = random.Random(args.seed)
    items, texts, records = [], [], []
    for row in rows:
        record = raw[row["extra_info"]["index"]]
        for text in completions(record, rng, args.per_row):
            items.append(row)
            texts.append(text)
            records.append(record)
    prompts = [tok.apply_chat_template(row["raw_prompt"], add_generation_prompt=True, tokenize=True)
               for row in items]
    prompts = [p["input_ids"] if hasattr(p, "keys") else p for p in prompts]  # transformers 5 returns a dict
    responses = [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in texts]
    bad = [t for t, r in zip(texts, responses) if tok.decode(r, skip_special_tokens=True) != t]
    assert not bad, f"{len(bad)} texts do not survive the tokenizer, e.g. {bad[0]!r}"
    P, R = max(map(len, prompts)), max(map(len, responses))
    left = torch.tensor([[tok.pad_token_id] * (P - len(p)) + p for p in prompts])
    right = torch.tensor([r + [tok.pad_token_id] * (R - len(r)) for r in responses])
    mask = torch.tensor([[0] * (P - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (R - len(r))
                         for p, r in zip(prompts, responses)])
    batch = collate_fn(items)
    data = DataProto.from_dict(
        tensors={"prompts": left, "responses": right, "input_ids": torch.cat([left, right], 1),
                 "attention_mask": mask},
        non_tensors={k: batch[k] for k in ("data_source", "reward_model", "extra_info")})
    return data, records, texts


def score_reward_loop(config, data, workers):
    """verl >= 0.7.1: the trainer's RewardLoopManager, Ray actors each running the configured reward manager."""
    import ray
    import torch
    from verl.experimental.reward_loop import RewardLoopManager

    ray.init(num_cpus=max(2, workers), include_dashboard=False, log_to_driver=False)
    try:
        scored = RewardLoopManager(config).compute_rm_score(data)
    finally:
        ray.shutdown()
    got = [float(x) for x in scored.non_tensor_batch["acc"]]  # what compute_score returned, per row
    # verl's reward tensor: the score (float32) at each row's last response token, zero elsewhere
    assert torch.equal(scored.batch["rm_scores"].sum(dim=1), torch.tensor(got, dtype=torch.float32))
    return got


def score_legacy(config, tok, data):
    """verl <= 0.7.0: the trainer's reward_fn, load_reward_manager(config, tokenizer, num_examine=0), called on the
    batch in this process; its reward tensor is float32, so the scores are too."""
    from verl.trainer.ppo.reward import load_reward_manager

    out = load_reward_manager(config, tok, num_examine=0)(data, return_dict=True)
    return out["reward_tensor"].sum(dim=1).tolist()


def compare(what, got, records, texts, float32):
    """Print and return the differences between verl's scores and the kit's reward on the raw records."""
    import torch

    from minirlvr.reward import constraint as reward

    kit, _ = reward.constraint_reward("hard", "mean")(records, texts)
    if float32:
        kit = torch.tensor(kit, dtype=torch.float32).tolist()
    diff = [(i, records[i]["key"], g, k) for i, (g, k) in enumerate(zip(got, kit)) if g != k]
    diff += [("missing", len(got), len(kit))] if len(got) != len(kit) else []
    print(f"{what}: {len(got)} completions; kit's scores: {sum(k == 0 for k in kit)} zero, "
          f"{sum(k == 1 for k in kit)} one, {sum(0 < k < 1 for k in kit)} between ({len(set(kit))} distinct values); "
          f"{len(got) - len(diff)} of {len(kit)} equal to the kit's reward on the raw record"
          + (f"; differences (row, key, verl, kit): {diff[:10]}" if diff else ""))
    return diff or (["too few distinct values"] if len(set(kit)) < 3 else [])


def main(argv=None):
    args = parse(argv)
    import inspect

    import pandas as pd
    import ray
    import torch
    import transformers
    import verl
    from transformers import AutoTokenizer
    from verl.trainer.ppo.reward import load_reward_manager
    from verl.utils.dataset.rl_dataset import RLHFDataset

    import minirlvr.integrations.verl as kit_verl
    from minirlvr.cli import main as cli
    from minirlvr.data import prompt_text, read_records
    from minirlvr.engine.tokenizer import train_tokenizer

    start = time.perf_counter()
    legacy = "num_examine" in inspect.signature(load_reward_manager).parameters
    print(f"verl {verl.__version__} ({'legacy reward_fn' if legacy else 'reward loop'}), transformers "
          f"{transformers.__version__}, torch {torch.__version__}, ray {ray.__version__}, "
          f"python {sys.version.split()[0]}")
    os.makedirs(args.out, exist_ok=True)
    folder, train, model = (os.path.join(args.out, x) for x in ("data", "train.parquet", "tokenizer"))

    cli(["data", "build", "--out", folder, "--n", str(args.n), "--seed", str(args.seed)])  # 1
    records_file = os.path.join(folder, "hard_only.jsonl")
    raw = [json.loads(line) for line in open(records_file)]
    pd.DataFrame(kit_verl.parquet_rows(records_file, split="train")).to_parquet(train)
    tok = train_tokenizer([prompt_text(r) for r in read_records(records_file)], vocab_size=512)
    tok.save_pretrained(model)
    tok = AutoTokenizer.from_pretrained(model)

    overrides = readme_overrides(train, kit_verl.__file__, model, legacy)  # 2
    # verl 0.6's RLHFDataset returns the chat (which step 4 templates) only when asked
    config = verl_config(overrides + (["data.return_raw_chat=True"] if legacy else
                                      [f"reward.num_workers={args.workers}"]))
    print(f"the README's overrides compose with verl {verl.__version__}'s ppo_trainer config")

    dataset = RLHFDataset([train], tok, config.data)  # 3
    rows = [dataset[i] for i in range(len(dataset))]
    print(f"RLHFDataset read {len(rows)} rows of {len(raw)} records")
    data, records, texts = inputs(args, tok, rows, raw)  # 4

    diff = []
    if legacy:  # 5, 6
        # 0.7.0 scores in the agent loop's reward workers unless use_reward_loop=False, and those know no "batch"
        off = ["++reward_model.use_reward_loop=False"]
        for manager, fn in (("naive", "compute_score"), ("batch", "compute_score_batch")):
            config = verl_config(overrides + off + [f"reward_model.reward_manager={manager}",
                                                    f"custom_reward_function.name={fn}"])
            diff += compare(f"reward_model.reward_manager={manager} with {fn}", score_legacy(config, tok, data),
                            records, texts, float32=True)
    else:
        from verl.experimental.reward_loop.reward_manager import registry

        print(f"registered reward managers: {sorted(registry.REWARD_MANAGER)}")
        try:
            load_reward_manager(verl_config(overrides + ["reward.reward_manager.name=batch"]), tok)
            print("reward.reward_manager.name=batch: loads")
        except Exception as e:  # verl's message, as a user would see it
            print(f"reward.reward_manager.name=batch: {type(e).__name__}: {e}")
        diff += compare(f"verl's RewardLoopManager, {args.workers} Ray workers, reward manager "
                        f"{config.reward.reward_manager.name}", score_reward_loop(config, data, args.workers),
                        records, texts, float32=False)
    print(f"{time.perf_counter() - start:.0f} s")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
