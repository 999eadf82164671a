"""`python -m minirlvr.bench judge`: peak memory of judging with the policy's own base (adapter off) against
loading a separate judge, the same model, in one run.

Two rows, each a fresh child process that loads the LoRA policy (the training setup) and then asks an LLM judge
the same questions:
    shared     the judge is the policy with its adapter switched off (`--judge_model=base`, the default)
    separate   the judge is a second copy of the same model loaded from the same folder (`--judge_model=PATH`)
Peak memory is measured from before the policy is loaded to after the judge has answered: CUDA's
max_memory_allocated on a GPU, the resident-set high-water mark on a CPU (Linux VmHWM, reset at the start; it
counts every page the process touches, so the child is fresh). The policy runs one forward before the judge is
built, as in training (on a CPU its weights are mapped from the file and become resident only when touched).
The policy's LoRA B matrices are set non-zero, so the policy differs from its base; both judges must then give
the same answers (checked), which shows that the adapter was really off. The model is a random Qwen2 (default
~155M parameters on a CPU, ~0.5B-shaped on a GPU) saved to a temporary folder; its answers are gibberish and do
not matter here, only that both judges agree.
This measures memory only, not judge quality (see `python run.py judge-audit`).
"""

import argparse
import json
import sys
import tempfile

import torch

from minirlvr.bench.measure import run_child
from minirlvr.data import to_json

CPU_SHAPE = dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=8, num_attention_heads=16,
                 num_key_value_heads=4, vocab_size=32000)
GPU_SHAPE = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936)
WORDS = [f"w{i}" for i in range(2000)] + ["yes", "no"]
QUESTIONS = [({"prompt": f"w{3 * i} w{i + 7} w{i + 11}"}, f"w{i} w{2 * i} yes w{i + 1}", ["w5 w6", "w8 w9 no"])
             for i in range(8)]


def save_model(folder, shape):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from minirlvr.engine.model import word_tokenizer

    tok = word_tokenizer(WORDS)
    cfg = Qwen2Config(max_position_embeddings=1024, tie_word_embeddings=False, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, **shape)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def child(args):
    from minirlvr.bench.measure import PeakMemory
    from minirlvr.engine.config import make_config
    from minirlvr.reward.llm_judge import adapters_enabled, load_judge
    from minirlvr.engine.model import load_model, pick_device

    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    mem = PeakMemory(device)
    cfg = make_config(model=args.folder, device=str(device), lora_r=16, lora_alpha=32)
    policy, tok = load_model(cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in policy.named_parameters():
            if "lora_B" in n:  # a trained adapter: the policy is no longer its base
                p.copy_((torch.randn(p.shape, generator=g) * 0.05).to(p.dtype))
    # A training policy has run: on a CPU, safetensors weights are mapped from the file and only become resident
    # when a forward touches them, so an idle policy would hide its own size.
    with torch.no_grad():
        policy(input_ids=torch.tensor([tok("w1 w2 w3").input_ids], device=device))
    after_policy = mem.peak()
    if args.child == "shared":
        judge = load_judge("base", policy, tok, mode="pointwise")
    else:
        judge = load_judge(args.folder, mode="pointwise", device=str(device))
    v = judge.check(QUESTIONS)
    peak = mem.peak()
    print(json.dumps({"variant": args.child, "device": str(device), "peak_bytes": peak,
                      "after_policy_bytes": after_policy, "answers": v.answers,
                      "adapter_on_after": adapters_enabled(policy)}))


def spawn(args, variant, folder):
    return run_child("minirlvr.bench.judge", ["--child", variant, "--folder", folder, "--device", args.device,
                                              "--threads", str(args.threads)], variant)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minirlvr.bench judge", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per child (0 = torch's default)")
    p.add_argument("--out", help="append the result as one JSON line to this file")
    p.add_argument("--child", choices=("shared", "separate"), help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    shape = GPU_SHAPE if args.device.startswith("cuda") else CPU_SHAPE
    with tempfile.TemporaryDirectory() as folder:
        n_params = save_model(folder, shape)
        rows = {v: spawn(args, v, folder) for v in ("shared", "separate")}
    width = 2 if args.device.startswith("cuda") else 4  # bf16 on a GPU, fp32 on a CPU
    weight_bytes = n_params * width
    # On a CPU only touched pages count, and a forward reads a few rows of the input embedding table.
    touched = weight_bytes if width == 2 else (n_params - shape["vocab_size"] * shape["hidden_size"]) * width
    a, b = rows["shared"], rows["separate"]
    print(f"judge memory on {args.device}: random Qwen2, {n_params / 1e6:.0f}M parameters "
          f"({weight_bytes / 2**20:.0f} MiB of weights" + ("" if width == 2 else
          f", {touched / 2**20:.0f} MiB without the input embedding table, whose unread rows a CPU never maps in")
          + f"), LoRA r=16 policy, {len(QUESTIONS)} items x 2 constraints")
    print(f"{'judge':<10}{'after policy MiB':>18}{'peak MiB':>11}")
    for name, r in rows.items():
        print(f"{name:<10}{r['after_policy_bytes'] / 2**20:>18.0f}{r['peak_bytes'] / 2**20:>11.0f}")
    extra = b["peak_bytes"] - a["peak_bytes"]
    same = a["answers"] == b["answers"]
    print(f"separate - shared: {extra / 2**20:.0f} MiB ({extra / touched:.2f}x the weights a forward touches); "
          f"separate / shared: {b['peak_bytes'] / a['peak_bytes']:.2f}x; same answers: {same}; "
          f"adapter on after judging: {a['adapter_on_after']}")
    result = {"bench": "judge", "device": args.device, "params": n_params, "weight_bytes": weight_bytes,
              "touched_weight_bytes": touched,
              "shared_peak_bytes": a["peak_bytes"], "separate_peak_bytes": b["peak_bytes"],
              "extra_bytes": extra, "same_answers": same, "adapter_on_after": a["adapter_on_after"]}
    if args.out:
        with open(args.out, "a") as f:
            f.write(to_json(result) + "\n")
    if not same:
        sys.exit("the shared judge (adapter off) and the separate base disagree: the adapter was not off")
    return result


if __name__ == "__main__":
    main()
