"""A short TRL GRPO run with the kit's data and reward, every reward call recorded: the trial of the README's TRL
recipe on one machine, CPU or GPUs, before renting more. Launch it with one process per device:

    python -m torch.distributed.run --standalone --nproc_per_node=2 scripts/trl_trial.py \
        --model Qwen/Qwen2.5-0.5B-Instruct --data data/hard_only.jsonl --out runs/trl-trial

(on a CPU, OMP_NUM_THREADS=1 per process; `accelerate launch` needs --multi_gpu to start two processes even there.)
Each process appends one JSON line per reward call to OUT/calls.rank<R>.jsonl (rank, world size, pid, torch's
threads, the rows' keys, prompts and completions, the rewards); rank 0 writes TRL's log to OUT/log_history.json
and prints, per step, TRL's logged reward mean next to the mean over every rank's recorded rewards.
tests/test_trl_two_process.py runs it and checks the records against the kit's reward on the raw records.

The reward is the kit's hard reward (minirlvr.integrations.trl.reward_function(reward="hard")): no judge. This
script trains nothing worth keeping (no checkpoint is saved) and does not build data (`run.py data build`).
"""

import argparse
import json
import os


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a Hugging Face model name or folder (with its tokenizer)")
    p.add_argument("--data", required=True, help="the kit's records, e.g. data/hard_only.jsonl")
    p.add_argument("--out", required=True, help="folder for the call records and TRL's log")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--batch", type=int, default=4, help="completions per process per step")
    p.add_argument("--generations", type=int, default=4, help="G; processes x batch must be a multiple of it")
    p.add_argument("--completion-len", type=int, default=16)
    p.add_argument("--lora-r", type=int, default=8, help="0: train the whole model")
    p.add_argument("--processes", type=int, default=None,
                   help="fail unless the trainer sees this many processes (default: the launcher's WORLD_SIZE; "
                        "`accelerate launch` without --multi_gpu starts one process on a machine without GPUs "
                        "and sets none)")
    return p.parse_args(argv)


class Recorded:
    """A TRL reward function that calls `fn` and appends what it was given and returned to `path`."""

    def __init__(self, fn, path):
        self.fn, self.path, self.__name__ = fn, path, fn.__name__  # TRL logs rewards/<__name__>/...

    def __call__(self, prompts, completions, **kwargs):
        import torch
        from accelerate import PartialState  # the trainer's view of the processes (a shared singleton)

        from minirlvr.integrations.trl import completion_text

        rewards = self.fn(prompts, completions, **kwargs)
        state = PartialState()
        call = {"rank": state.process_index, "world_size": state.num_processes, "pid": os.getpid(),
                "threads": torch.get_num_threads(),
                "keys": list(kwargs["key"]), "prompts": list(prompts),
                "completions": [completion_text(c) for c in completions], "rewards": list(rewards)}
        with open(self.path, "a") as f:
            f.write(json.dumps(call) + "\n")
        return rewards


def summary(out, log_history, name, processes):
    """Per step: TRL's logged reward mean and the mean over every rank's recorded rewards of that step."""
    calls = {}
    for rank in range(processes):
        with open(os.path.join(out, f"calls.rank{rank}.jsonl")) as f:
            calls[rank] = [json.loads(line) for line in f]
    logged = [entry[f"rewards/{name}/mean"] for entry in log_history if f"rewards/{name}/mean" in entry]
    lines = [f"{len(calls)} rank(s): " + ", ".join(f"{c[0]['rank']} (pid {c[0]['pid']}, world size "
                                                  f"{c[0]['world_size']})" for c in calls.values())]
    for step, mean in enumerate(logged):
        rewards = [r for c in calls.values() for r in c[step]["rewards"]]
        lines.append(f"step {step + 1}: TRL logged reward mean {mean:.6f}; mean over {len(rewards)} recorded "
                     f"rewards {sum(rewards) / len(rewards):.6f}")
    return "\n".join(lines)


def main(argv=None):
    args = parse(argv)
    import torch
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    from minirlvr.integrations.trl import reward_function, to_dataset

    os.makedirs(args.out, exist_ok=True)
    rank = int(os.environ.get("RANK", 0))
    calls = os.path.join(args.out, f"calls.rank{rank}.jsonl")
    if os.path.exists(calls):
        os.remove(calls)  # one run's calls per file
    reward = Recorded(reward_function(reward="hard", combine="mean"), calls)
    cuda = torch.cuda.is_available()
    config = GRPOConfig(
        output_dir=args.out, max_steps=args.steps, per_device_train_batch_size=args.batch,
        num_generations=args.generations, max_completion_length=args.completion_len, learning_rate=1e-5,
        beta=0.001, epsilon=0.2, epsilon_high=0.28, bf16=cuda, logging_steps=1, save_strategy="no",
        report_to="none", seed=0, disable_tqdm=True,
        # Without use_cpu on a machine without GPUs, accelerate sees no distributed setup: each process trains
        # alone on the same rows (torch.distributed still reports world size 2) and nothing warns.
        use_cpu=not cuda)
    lora = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, target_modules="all-linear",
                      task_type="CAUSAL_LM") if args.lora_r else None
    trainer = GRPOTrainer(model=args.model, args=config, train_dataset=to_dataset(args.data), reward_funcs=reward,
                          peft_config=lora)
    expected = args.processes or int(os.environ.get("WORLD_SIZE", 1))
    if trainer.accelerator.num_processes != expected:
        raise SystemExit(f"expected {expected} processes but the trainer sees {trainer.accelerator.num_processes}: "
                         f"a process that sees only itself trains alone on its own copy of the rows")
    trainer.train()
    trainer.accelerator.wait_for_everyone()  # every rank's calls are written before rank 0 reads them
    if trainer.is_world_process_zero():
        with open(os.path.join(args.out, "log_history.json"), "w") as f:
            json.dump(trainer.state.log_history, f, indent=1)
        print(summary(args.out, trainer.state.log_history, reward.__name__, trainer.accelerator.num_processes),
              flush=True)


if __name__ == "__main__":
    main()
