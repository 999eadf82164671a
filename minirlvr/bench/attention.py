"""`python -m minirlvr.bench attention`: attention mass per segment, our way vs eager `output_attentions=True`.

Rows, each measured in a fresh child process (so one variant's freed memory cannot hide another's peak):
    model sdpa      the decoder's forward with SDPA, nothing collected: the floor
    model hook      the same forward with `collect_attention_mass` on every layer, all queries
    model eager     eager attention with output_attentions=True, then per-segment sums: the baseline
    layer kernel    `attention_mass` for one layer's q and k (default backend: triton on CUDA, blockwise on CPU)
    layer full      the same from full softmax probabilities (`attention_mass_reference`)
Ratios are eager/hook and full/kernel, from the same run. Time: median of --repeats runs after a warm-up, wall
clock and process CPU time (the fairer one on a CPU shared with other work).
Peak memory, from one more run: the growth over what is allocated before it, by `torch.cuda.max_memory_allocated`
on CUDA, by the resident-set high-water mark on CPU (Linux; glibc is told to return every large free and its free
heap pages to the OS so that the mark follows the memory the run touches). The CPU figure is coarse: heap reuse
and caches move it by about 10 MiB between runs, small next to eager's attention probabilities but not next to the
kernel's own few MiB, so the layer-level CPU ratio is only an order of magnitude.

Defaults: CUDA: a Qwen2.5-0.5B-shaped random model (24 layers, 14 heads, 2 KV heads, head dim 64) in bf16 at
T = 1024 and 4096. CPU: a 4-layer, 8-head model in fp32 at T = 1024 (under a minute on two cores).
A last child checks that hook and eager give the same mass at the smallest T.
"""

import argparse
import json
import time

import torch

from minirlvr.bench.measure import PeakMemory, run_child, sync
from minirlvr.data import to_json

GPU_MODEL = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2)
CPU_MODEL = dict(hidden_size=512, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=8,
                 num_key_value_heads=2)
S = 4  # template / task / constraint / response
VARIANTS = ("model sdpa", "model hook", "model eager", "layer kernel", "layer full")


def build(args, device):
    """Random model, token ids (1, T) and segment ids (1, T) with four contiguous segments."""
    from transformers import AutoModelForCausalLM, Qwen2Config

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    shape = GPU_MODEL if device.type == "cuda" else CPU_MODEL
    cfg = Qwen2Config(vocab_size=1024, max_position_embeddings=max(8192, args.T), **shape)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa", dtype=dtype).to(device).eval()
    ids = torch.randint(0, 1024, (1, args.T), device=device)  # (1, T)
    cuts = [0, args.T // 20, args.T // 4, args.T // 2, args.T]  # template, task, constraint, response
    seg = torch.cat([torch.full((cuts[i + 1] - cuts[i],), i) for i in range(S)])[None].to(device)  # (1, T)
    return model, ids, seg


def eager_mass(model, ids, seg, exact=False):
    """The baseline: every layer's (1, H, T, T) probabilities, summed per segment (in fp32 if `exact`)."""
    model.set_attn_implementation("eager")
    out = model(input_ids=ids, output_attentions=True)
    model.set_attn_implementation("sdpa")
    dtype = torch.float32 if exact else out.attentions[0].dtype
    onehot = torch.nn.functional.one_hot(seg, S).to(dtype)  # (1, T, S)
    return [(a.to(dtype) @ onehot[:, None]).float().cpu() for a in out.attentions]  # n_layers x (1, H, T, S)


def hook_mass(model, ids, seg):
    from minirlvr.evaluation.attention_hook import collect_attention_mass

    with collect_attention_mass(model, seg, S) as c:
        model(input_ids=ids)
    return [c.mass[layer] for layer in sorted(c.mass)]  # n_layers x (1, H, T, S)


def child(args):
    """One variant at one T: prints a JSON line with median seconds and peak bytes."""
    from minirlvr.kernels.attention import attention_mass, attention_mass_reference, resolve_backend

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, ids, seg = build(args, device)
    cfg = model.config
    d = cfg.hidden_size // cfg.num_attention_heads
    g = torch.Generator(device=device).manual_seed(1)
    q = torch.randn(1, cfg.num_attention_heads, args.T, d, device=device, generator=g).to(model.dtype)
    k = torch.randn(1, cfg.num_key_value_heads, args.T, d, device=device, generator=g).to(model.dtype)
    run = {
        "model sdpa": lambda: model(input_ids=ids).logits,
        "model hook": lambda: hook_mass(model, ids, seg),
        "model eager": lambda: eager_mass(model, ids, seg),
        "layer kernel": lambda: attention_mass(q, k, seg, S),
        "layer full": lambda: attention_mass_reference(q, k, seg, S),
    }
    if args.child == "check":
        with torch.no_grad():
            ours, theirs = hook_mass(model, ids, seg), eager_mass(model, ids, seg, exact=True)
        err = max(float((a - b).abs().max()) for a, b in zip(ours, theirs))
        print(json.dumps({"check": "hook vs eager", "T": args.T, "max_abs_diff": err}))
        return
    fn = run[args.child]
    with torch.no_grad():
        fn()  # warm-up: Triton compilation, allocator pools
        sync(device)
        times, cpu_times = [], []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            out = fn()
            sync(device)
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
            del out
        mem = PeakMemory(device)  # on a CPU this pins glibc's mmap threshold: after timing
        out = fn()
        peak = mem.peak()
    print(json.dumps({"variant": args.child, "T": args.T, "device": str(device), "dtype": str(model.dtype),
                      "backend": resolve_backend(None, device), "seconds": sorted(times)[len(times) // 2],
                      "cpu_seconds": sorted(cpu_times)[len(cpu_times) // 2],
                      "peak_bytes": peak}))


def spawn(args, variant, T):
    return run_child("minirlvr.bench.attention", ["--child", variant, "--T", str(T), "--device", args.device,
                                                          "--repeats", str(args.repeats), "--threads",
                                                          str(args.threads)], f"{variant} at T={T}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minirlvr.bench attention", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--T", type=str, default=None, help="comma-separated lengths (default 1024,4096 on CUDA, "
                                                       "1024 on CPU)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per child (default 1 on CPU, where idle-spinning extra threads on shared "
                        "cores distort both clocks; 0 = torch's default)")
    p.add_argument("--out", help="append result rows to this JSONL file")
    p.add_argument("--no-check", action="store_true", help="skip the hook-vs-eager agreement check")
    p.add_argument("--child", choices=VARIANTS + ("check",), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads is None:
        args.threads = 0 if args.device.startswith("cuda") else 1
    if args.child:
        args.T = int(args.T)
        return child(args)
    lengths = [int(t) for t in (args.T or ("1024,4096" if args.device.startswith("cuda") else "1024")).split(",")]
    print(f"attention mass benchmark on {args.device}, median of {args.repeats}, each row a fresh process"
          + (f" with {args.threads} torch thread(s)" if args.threads else ""))
    print(f"{'variant':<14}{'T':>6}{'seconds':>11}{'CPU s':>9}{'peak MiB':>11}")
    rows = []
    for T in lengths:
        got = {}
        for variant in VARIANTS:
            r = got[variant] = spawn(args, variant, T)
            rows.append(r)
            print(f"{variant:<14}{T:>6}{r['seconds']:>11.4f}{r['cpu_seconds']:>9.2f}{r['peak_bytes'] / 2**20:>11.1f}",
                  flush=True)
        for ours, base in (("model hook", "model eager"), ("layer kernel", "layer full")):
            a, b = got[ours], got[base]
            ratio = {"ratio": f"{base} / {ours}", "T": T, "speedup": b["seconds"] / a["seconds"],
                     "cpu_time_ratio": b["cpu_seconds"] / a["cpu_seconds"],
                     "memory_ratio": b["peak_bytes"] / max(a["peak_bytes"], 1), "backend": a["backend"]}
            rows.append(ratio)
            print(f"  {base} / {ours} at T={T}: {ratio['speedup']:.2f}x wall time, {ratio['cpu_time_ratio']:.2f}x "
                  f"CPU time, {ratio['memory_ratio']:.1f}x peak memory ({a['backend']} backend)")
            if ours == "model hook" and T == 4096 and args.device.startswith("cuda"):
                met = ratio["speedup"] >= 5 and ratio["memory_ratio"] >= 50
                print(f"  goal at T=4096 on a GPU (>= 5x faster, >= 50x less memory): {'met' if met else 'NOT met'}")
    if not args.no_check:
        r = spawn(args, "check", lengths[0])
        rows.append(r)
        print(f"hook vs eager mass at T={lengths[0]}: max abs diff {r['max_abs_diff']:.2e}")
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.writelines(to_json(r) + "\n" for r in rows)


if __name__ == "__main__":
    main()
