"""`python -m minirlvr.bench step`: seconds per GRPO step, sampling and training tokens/s and peak memory of the
kit's loop, and with `--vs trl` of TRL's GRPOTrainer on the same model, in the same run, as ratios.

    python -m minirlvr.bench step --shape small --vs trl              # the CPU comparison
    python -m minirlvr.bench step --shape qwen2.5-7b --4bit --completion-len 1024 --memory-cap-gb 12 --vs trl

The model is the shape's config.json (minirlvr/configs/) with random weights (seeded, no download), saved once to
a folder that both sides load; the tokenizer is a word-level one over the whole vocabulary, so a prompt of P words
is P tokens on both sides. Equal work: random weights rarely emit EOS, and when they do the two sides would stop at
different places, so no row may stop early. The kit's side has no EOS id (the sampler runs every row to
max_new_tokens); TRL's side gets `min_new_tokens = L` (transformers masks EOS until then). Both report the mean
completion length, which must be L. Same on both sides: LoRA (r, alpha, dropout 0, all linear layers), 4-bit NF4
base or not, gradient checkpointing or not, B prompts x G samples per step, micro-batches of `--micro-batch`
rollouts (TRL: per_device_train_batch_size, gradient accumulation over the step, one generation per step),
token-level loss (TRL's "dapo"), clip 0.2 / 0.28, beta (a reference pass with the adapter off), AdamW at the same
learning rate, gradient clipping at 1.0, temperature 1 and no top-k/top-p, and the same toy reward of the text.
What differs is each trainer's own machinery: TRL repeats every prompt G times, prefills it G times and trains on
G full sequences, transformers' generate, Trainer/accelerate bookkeeping; the kit prefills once, runs each prompt
once per micro-batch in the training passes too (shared-prefix forward), its own sampler, fused log-probs.

Each side runs in a fresh process (a clean peak). Timing: the median seconds per step over steps 2..S (step 1
warms up allocators and caches); sampling time is the time inside the generate call, training time is the rest of
the step (reference pass, policy passes, optimizer, rewards). Peak memory: on a CPU the process's peak resident
set (everything, from imports and model loading on), on CUDA the allocator's peak.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time

import torch

from minirlvr.data import to_json

SHAPES = ("tiny", "small", "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-7b")
CPU_SHAPES = ("tiny", "small")  # shorter default lengths: a 2-core CPU


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m minirlvr.bench step", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", default="small", help=f"one of {', '.join(SHAPES)} (minirlvr/configs/<shape>.json), "
                   f"or a path to a config.json")
    p.add_argument("--B", type=int, default=4, help="prompts per step")
    p.add_argument("--G", type=int, default=8, help="samples per prompt")
    p.add_argument("--prompt-len", type=int, default=None, help="prompt tokens (default 64 on tiny/small, else 256)")
    p.add_argument("--completion-len", type=int, default=None,
                   help="completion tokens, every row (default 64 on tiny/small, else 256)")
    p.add_argument("--micro-batch", type=int, default=8, help="rollouts per forward/backward")
    p.add_argument("--steps", type=int, default=4, help="GRPO steps per side (timing: median of steps 2..S)")
    p.add_argument("--4bit", dest="four_bit", action="store_true", help="NF4 base (bitsandbytes) + LoRA")
    p.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing on both sides")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--beta", type=float, default=0.001, help="KL coefficient (> 0: a reference pass)")
    p.add_argument("--cpu-mmap-threshold-kb", type=int, default=None,
                   help="the kit's cpu_mmap_threshold_kb (default: the kit's default; 0: glibc's own behaviour)")
    p.add_argument("--vs", choices=["trl"], default=None, help="also run TRL's GRPOTrainer and print the ratios")
    p.add_argument("--memory-cap-gb", type=float, default=None,
                   help="CUDA: cap each process at N GB (torch.cuda.set_per_process_memory_fraction)")
    p.add_argument("--repeats", type=int, default=1, help="runs per side, alternating; the median run is reported")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads in each side's process (0 = default)")
    p.add_argument("--device", default="auto")
    p.add_argument("--workdir", default="", help="where the random model folder is written (default: a temp dir)")
    p.add_argument("--out", default="", help="also append the result as one JSON line to this file")
    p.add_argument("--side", choices=["kit", "trl"], help=argparse.SUPPRESS)  # internal: one side, in this process
    p.add_argument("--folder", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cpu_shape = args.shape in CPU_SHAPES
    args.prompt_len = args.prompt_len or (64 if cpu_shape else 256)
    args.completion_len = args.completion_len or (64 if cpu_shape else 256)
    if (args.B * args.G) % args.micro_batch:
        p.error(f"--micro-batch {args.micro_batch} must divide B*G = {args.B * args.G}")
    return args


# ---------------------------------------------------------------------------------------------- the shared model


def toy_reward(text):
    """A cheap reward of the text alone that varies between samples (so advantages are not all zero)."""
    return (sum(map(ord, text)) % 5) / 4


def config_path(shape):
    if os.path.isfile(shape):
        return shape
    if shape not in SHAPES:
        sys.exit(f"error: --shape {shape!r}: expected one of {', '.join(SHAPES)} or a config.json path")
    from minirlvr.pipeline.plan import shape_config_path

    return shape_config_path(shape)


def build_model_folder(shape, workdir):
    """A random model of the shape (seed 0) + a word tokenizer over its vocabulary, saved once per shape."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from minirlvr.engine.model import word_tokenizer

    folder = os.path.join(workdir, os.path.basename(shape).removesuffix(".json"))
    if os.path.isfile(os.path.join(folder, "done")):
        return folder
    with open(config_path(shape)) as f:
        cfg = AutoConfig.for_model(**json.load(f))
    cfg.eos_token_id, cfg.pad_token_id, cfg.bos_token_id = 1, 0, None  # the word tokenizer's ids
    torch.manual_seed(0)
    big = cfg.hidden_size >= 768
    with torch.device("cuda" if big and torch.cuda.is_available() else "cpu"):  # random init of billions: on a GPU
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16 if big else torch.float32)
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = 1, 0
    model.generation_config.bos_token_id = None
    model.save_pretrained(folder)
    word_tokenizer([f"w{i}" for i in range(cfg.vocab_size - 3)]).save_pretrained(folder)
    open(os.path.join(folder, "done"), "w").close()
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the sides run in child processes: hold no GPU memory here meanwhile
    return folder


def prompt_texts(args):
    """B * steps distinct prompts of exactly prompt_len words (= tokens), from the folder's word vocabulary."""
    with open(os.path.join(args.folder, "config.json")) as f:
        words = min(json.load(f)["vocab_size"] - 3, 1000)  # the tokenizer's words are w0 .. w(V-4)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, words, (args.B * args.steps, args.prompt_len), generator=g)
    return [" ".join(f"w{i}" for i in row.tolist()) for row in ids]


class GenerateTimer:
    """Wraps a generate function: seconds spent inside it, per call."""

    def __init__(self, fn, device):
        self.fn, self.device, self.seconds = fn, device, []

    def __call__(self, *a, **kw):
        from minirlvr.bench.measure import sync

        sync(self.device)
        t = time.perf_counter()
        out = self.fn(*a, **kw)
        sync(self.device)
        self.seconds.append(time.perf_counter() - t)
        return out


def cap_memory(args, device):
    if args.memory_cap_gb and device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.memory_cap_gb * 2**30 / total), device)


def peak_gb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def summary(step_s, sample_s, lengths, args, device, side):
    N, L = args.B * args.G, args.completion_len
    timed = list(range(1, len(step_s))) or [0]  # steps 2..S
    sec = statistics.median(step_s[i] for i in timed)
    samp = statistics.median(sample_s[i] for i in timed)
    return {"side": side, "sec_per_step": sec, "sample_tok_s": N * L / samp, "train_tok_s": N * L / (sec - samp),
            "peak_gb": peak_gb(device), "mean_completion_len": statistics.mean(lengths), "step_s": step_s,
            "sample_s": sample_s}


# ---------------------------------------------------------------------------------------------- one side each


def run_kit(args):
    import minirlvr.train as kit
    from minirlvr.engine.config import make_config
    from minirlvr.engine.model import pick_device

    device = pick_device(args.device)
    cap_memory(args, device)
    kit.eos_token_ids = lambda model, tokenizer: []  # equal work: no row stops before max_new_tokens
    timer = kit.generate = GenerateTimer(kit.generate, device)

    def reward(records, completions):
        return [toy_reward(c) for c in completions], {}

    out_dir = tempfile.mkdtemp(prefix="bench-step-kit-")
    cfg = make_config(model=args.folder, load_in_4bit=args.four_bit, lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
                      lora_dropout=0.0, gradient_checkpointing=args.grad_ckpt, device=args.device, out_dir=out_dir,
                      chat_template=False, steps=args.steps, prompts_per_step=args.B, group_size=args.G,
                      max_new_tokens=args.completion_len, temperature=1.0, lr=1e-5, micro_batch_size=args.micro_batch,
                      beta=args.beta, ckpt_every=0, rollouts_every=0, log_every=0, progress=False,
                      **({} if args.cpu_mmap_threshold_kb is None else
                         {"cpu_mmap_threshold_kb": args.cpu_mmap_threshold_kb}))
    records = [{"key": str(i), "prompt": p} for i, p in enumerate(prompt_texts(args))]
    result = kit.train(cfg, reward_fn=reward, records=records)
    lengths = [m["len"] for m in result.history]
    return summary([m["time_s"] for m in result.history], timer.seconds, lengths, args, device, "kit")


def run_trl(args):
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from minirlvr.engine.model import load_tokenizer, nf4_kwargs, pick_device

    device = pick_device(args.device)
    cap_memory(args, device)
    cuda = device.type == "cuda"
    kwargs = {**(nf4_kwargs(device) if args.four_bit else {}), "dtype": torch.bfloat16 if cuda else torch.float32}
    model = AutoModelForCausalLM.from_pretrained(args.folder, **kwargs)
    if not args.four_bit:
        model.to(device)
    tokenizer = load_tokenizer(args.folder)
    N = args.B * args.G
    lengths = []

    def reward(prompts, completions, completion_ids=None, **kw):
        lengths.extend(len(c) for c in completion_ids)
        return [toy_reward(c) for c in completions]

    class StepClock(TrainerCallback):
        def __init__(self):
            self.ends = []

        def on_train_begin(self, *a, **kw):
            self.ends.append(time.perf_counter())

        def on_step_end(self, *a, **kw):
            from minirlvr.bench.measure import sync

            sync(device)
            self.ends.append(time.perf_counter())

    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-step-trl-"), max_steps=args.steps, learning_rate=1e-5,
        per_device_train_batch_size=args.micro_batch, gradient_accumulation_steps=N // args.micro_batch,
        steps_per_generation=N // args.micro_batch, num_generations=args.G, num_iterations=1,
        max_completion_length=args.completion_len, generation_kwargs={"min_new_tokens": args.completion_len},
        temperature=1.0, top_p=1.0, top_k=0, beta=args.beta, epsilon=0.2, epsilon_high=0.28, loss_type="dapo",
        scale_rewards="group", max_grad_norm=1.0, weight_decay=0.0, gradient_checkpointing=args.grad_ckpt,
        bf16=cuda, use_cpu=not cuda, seed=0, save_strategy="no", report_to="none", logging_steps=1,
        disable_tqdm=True, shuffle_dataset=False, dataloader_num_workers=0)
    lora = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0, target_modules="all-linear",
                      task_type="CAUSAL_LM")
    data = datasets.Dataset.from_list([{"prompt": p} for p in prompt_texts(args)])
    clock = StepClock()
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config, train_dataset=data,
                          processing_class=tokenizer, peft_config=lora, callbacks=[clock])
    timer = GenerateTimer(trainer.model.generate, device)
    trainer.model.generate = timer
    trainer.train()
    steps = [b - a for a, b in zip(clock.ends, clock.ends[1:])]
    per_step = [statistics.mean(lengths[i * N:(i + 1) * N]) for i in range(len(steps))]
    return summary(steps, timer.seconds, per_step, args, device, "trl")


# ---------------------------------------------------------------------------------------------- the parent


def run_side(side, args, folder, argv):
    from minirlvr.bench.measure import run_child

    child = [*argv, "--side", side, "--folder", folder]
    if args.threads:
        child += ["--threads", str(args.threads)]
    return run_child("minirlvr.bench.step", child, f"bench step ({side})")


def describe(args, device):
    import peft
    import transformers

    parts = [f"shape {args.shape}", f"B={args.B} G={args.G}", f"prompt {args.prompt_len} + completion "
             f"{args.completion_len} tokens (every row; EOS off)", f"micro-batch {args.micro_batch}",
             f"LoRA r={args.lora_r}", "4-bit NF4 base" if args.four_bit else "unquantized base",
             f"grad ckpt {'on' if args.grad_ckpt else 'off'}", f"beta {args.beta}", f"{args.steps} steps"]
    if args.cpu_mmap_threshold_kb is not None:
        parts.append(f"kit cpu_mmap_threshold_kb={args.cpu_mmap_threshold_kb}")
    if args.memory_cap_gb:
        parts.append(f"cap {args.memory_cap_gb} GB")
    versions = f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}"
    if args.vs == "trl":
        import trl

        versions += f", trl {trl.__version__}"
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {args.threads or torch.get_num_threads()} threads"
    return ", ".join(parts), f"{where}; {versions}"


def main(argv):
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.side:  # a child: one side, one JSON line
        result = run_kit(args) if args.side == "kit" else run_trl(args)
        print(json.dumps(result))
        return
    from minirlvr.engine.model import pick_device

    if args.vs == "trl":
        import importlib.util

        if importlib.util.find_spec("trl") is None:
            sys.exit("error: --vs trl needs TRL: pip install -e '.[trl]' (or '.[test]', which pins the tested "
                     "trl 1.16)")
    device = pick_device(args.device)
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench-step-")
    folder = build_model_folder(args.shape, workdir)
    sides = ["kit"] + (["trl"] if args.vs else [])
    runs = {s: [] for s in sides}
    for _ in range(args.repeats):
        for side in sides:
            runs[side].append(run_side(side, args, folder, argv))
    # the median run per side (by seconds per step)
    res = {s: sorted(r, key=lambda x: x["sec_per_step"])[len(r) // 2] for s, r in runs.items()}
    setting, machine = describe(args, device)
    print(f"GRPO step benchmark: {setting}\n{machine}")
    print(f"{'':6} {'s/step':>8} {'sample tok/s':>13} {'train tok/s':>12} {'peak GB':>8} {'mean len':>9}")
    for s, r in res.items():
        print(f"{s:6} {r['sec_per_step']:8.3f} {r['sample_tok_s']:13.1f} {r['train_tok_s']:12.1f} "
              f"{r['peak_gb']:8.3f} {r['mean_completion_len']:9.1f}")
    out = {"setting": setting, "machine": machine, "results": res, "date": time.strftime("%Y-%m-%d")}
    if "trl" in res:
        k, t = res["kit"], res["trl"]
        out["ratios"] = {"time": k["sec_per_step"] / t["sec_per_step"], "memory": k["peak_gb"] / t["peak_gb"],
                         "sample_tok_s": k["sample_tok_s"] / t["sample_tok_s"],
                         "train_tok_s": k["train_tok_s"] / t["train_tok_s"]}
        r = out["ratios"]
        print(f"kit / trl: time per step {r['time']:.2f}x, peak memory {r['memory']:.2f}x, sampling tokens/s "
              f"{r['sample_tok_s']:.2f}x, training tokens/s {r['train_tok_s']:.2f}x")
    L = args.completion_len
    for s, r in res.items():
        if abs(r["mean_completion_len"] - L) > 1e-6:
            print(f"warning: {s}'s completions averaged {r['mean_completion_len']:.1f} tokens, not {L}: unequal work")
    if args.out:
        with open(args.out, "a") as f:
            f.write(to_json(out) + "\n")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
