"""verl's own reward path on the kit's parquet with the kit's compute_score, every score compared with the kit's
reward on the raw record. On a CPU, in a venv of its own (verl pins transformers below 5.11):

    python3 -m venv /tmp/verlenv && . /tmp/verlenv/bin/activate
    pip install "verl==0.9.1" && pip install -e .              # the second in the checkout
    python scripts/verl_reward_check.py --out /tmp/verl-check    # from the checkout or anywhere

Steps, each as the trainer (python -m verl.trainer.main_ppo) does it:
  1. the kit's data build (hard_only.jsonl, --n records) and integrations.verl.parquet_rows -> train.parquet;
  2. verl's trainer config (its ppo_trainer.yaml through Hydra) with the README's command-line overrides, so a
     key this verl lacks fails here; the reward managers it registers ("batch" among them or not);
  3. verl's RLHFDataset reads the parquet, with a byte-level tokenizer trained on the prompts (no download);
  4. --per-row completions for each row, built from the row's own kwargs so that constraints pass and fail,
     tokenized as a rollout's responses (+ EOS) after the chat-templated prompt;
  5. verl's RewardLoopManager scores them: Ray actors (--workers), each running the reward manager verl builds
     with reward.custom_reward_function.path = minirlvr/integrations/verl.py;
  6. every score == reward.constraint_reward("hard", "mean") on the raw JSONL record and the completion's text.
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


def readme_overrides(train, reward_path, model):
    """The README's verl command line, the files and model replaced by this check's."""
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
        f"reward.custom_reward_function.path={reward_path}",
        "reward.custom_reward_function.name=compute_score",
        "trainer.n_gpus_per_node=4", "trainer.nnodes=1", "trainer.total_epochs=1",
    ]


def verl_config(overrides):
    from hydra import compose, initialize_config_dir
    import verl

    folder = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=folder, version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def completions(record, rng, k):
    """k texts from the record's own kwargs values (keywords, phrases, words) and stock pieces, so that each
    constraint is met by some and missed by others."""
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


def main(argv=None):
    args = parse(argv)
    import numpy as np
    import pandas as pd
    import ray
    import torch
    import transformers
    import verl
    from transformers import AutoTokenizer
    from verl import DataProto
    from verl.experimental.reward_loop import RewardLoopManager
    from verl.experimental.reward_loop.reward_manager import registry
    from verl.trainer.ppo.reward import load_reward_manager
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    import minirlvr.integrations.verl as kit_verl
    from minirlvr import reward
    from minirlvr.cli import main as cli
    from minirlvr.data import prompt_text, read_records
    from minirlvr.miniature.tokenizer import train_tokenizer

    start = time.perf_counter()
    print(f"verl {verl.__version__}, transformers {transformers.__version__}, torch {torch.__version__}, "
          f"ray {ray.__version__}, python {sys.version.split()[0]}")
    os.makedirs(args.out, exist_ok=True)
    data, train, model = (os.path.join(args.out, x) for x in ("data", "train.parquet", "tokenizer"))

    cli(["data", "build", "--out", data, "--n", str(args.n), "--seed", str(args.seed)])  # 1
    raw = [json.loads(line) for line in open(os.path.join(data, "hard_only.jsonl"))]
    pd.DataFrame(kit_verl.parquet_rows(os.path.join(data, "hard_only.jsonl"), split="train")).to_parquet(train)
    tok = train_tokenizer([prompt_text(r) for r in read_records(os.path.join(data, "hard_only.jsonl"))],
                          vocab_size=512)
    tok.save_pretrained(model)
    tok = AutoTokenizer.from_pretrained(model)

    config = verl_config(readme_overrides(train, kit_verl.__file__, model) + [f"reward.num_workers={args.workers}"])
    print(f"README overrides compose with verl {verl.__version__}'s ppo_trainer config")  # 2
    print(f"registered reward managers: {sorted(registry.REWARD_MANAGER)}")
    try:
        load_reward_manager(verl_config(readme_overrides(train, kit_verl.__file__, model)
                                        + ["reward.reward_manager.name=batch"]), tok)
        print("reward.reward_manager.name=batch: loads")
    except Exception as e:  # verl's message, as a user would see it
        print(f"reward.reward_manager.name=batch: {type(e).__name__}: {e}")

    dataset = RLHFDataset([train], tok, config.data)  # 3
    rows = [dataset[i] for i in range(len(dataset))]
    print(f"RLHFDataset read {len(rows)} rows of {len(raw)} records")

    rng = random.Random(args.seed)  # 4
    items, texts, records = [], [], []
    for row in rows:
        record = raw[row["extra_info"]["index"]]
        for text in completions(record, rng, args.per_row):
            items.append(row)
            texts.append(text)
            records.append(record)
    prompts = [tok.apply_chat_template(row["raw_prompt"], add_generation_prompt=True, tokenize=True)
               for row in items]
    prompts = [p["input_ids"] if isinstance(p, dict) or hasattr(p, "keys") else p for p in prompts]
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

    ray.init(num_cpus=max(2, args.workers), include_dashboard=False, log_to_driver=False)  # 5
    try:
        scored = RewardLoopManager(config).compute_rm_score(data)
    finally:
        ray.shutdown()
    got = [float(x) for x in scored.non_tensor_batch["acc"]]  # what compute_score returned, per row
    # verl's reward tensor: the score (float32) at each row's last response token, zero elsewhere
    assert torch.equal(scored.batch["rm_scores"].sum(dim=1), torch.tensor(got, dtype=torch.float32))

    kit, _ = reward.constraint_reward("hard", "mean")(records, texts)  # 6
    diff = [(i, records[i]["key"], g, k) for i, (g, k) in enumerate(zip(got, kit)) if g != k]
    values = sorted(set(kit))
    print(f"{len(got)} completions ({len(rows)} rows x {args.per_row}) scored by verl's RewardLoopManager with "
          f"{args.workers} Ray workers; kit's scores: {sum(k == 0 for k in kit)} zero, {sum(k == 1 for k in kit)} "
          f"one, {sum(0 < k < 1 for k in kit)} between ({len(values)} distinct values)")
    print(f"{len(got) - len(diff)} of {len(got)} equal to the kit's reward on the raw record"
          + (f"; differences (row, key, verl, kit): {diff[:10]}" if diff else ""))
    print(f"{time.perf_counter() - start:.0f} s")
    return 1 if diff or len(got) != len(kit) or len(values) < 3 else 0


if __name__ == "__main__":
    sys.exit(main())
