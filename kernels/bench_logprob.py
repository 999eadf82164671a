"""`python -m minirlvr.bench logprob [options]`: fused token log-probs vs full logits, forward + backward.

For each shape (N tokens, D hidden, V vocabulary) it measures, for the fused path (`token_logprobs`, default
backend), the naive path (`token_logprobs_reference`: full logits + log_softmax + gather), Liger-Kernel's
LigerFusedLinearCrossEntropyLoss(reduction="none") where importable (CUDA only), and on CUDA the three matmuls no
method can avoid (logits, grad_hidden, grad_weight): wall time and peak extra memory of one forward + backward of
sum(g * logp), printed as ratios against naive from the same run.

Peak memory is the high-water mark above what the inputs already hold, measured in a fresh subprocess per
(method, shape) so no method inherits another's cache or heap:
  CUDA  torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), minus memory_allocated() before.
  CPU   the process's resident-set high-water mark (VmHWM in /proc/self/status, reset by writing 5 to
        /proc/self/clear_refs) minus VmRSS before the call. tracemalloc does not see torch's allocations, which is
        why it is not used. Large tensors are mmap'ed and returned to the OS when freed, so VmHWM tracks live
        tensor bytes to within a few MB; the `N*V*4` column gives the size of one fp32 logits tensor to compare.
Both include the gradient of `hidden` (and of `weight` with --train-weight), which every method allocates.
Time: the median of --repeats runs after the measured one (CUDA: after a warm-up, synchronized).

It deliberately does not tune block sizes or compare against other fused kernels than Liger's.
"""

import argparse
import json
import os
import subprocess
import sys

import torch

from minirlvr.bench import PeakMemory, timed
from minirlvr.kernels.logprobs import default_backend, token_logprobs, token_logprobs_reference

GPU_SHAPES = [(n, d, 151_936) for d in (896, 1536, 3584) for n in (1024, 4096, 16384)]
CPU_SHAPES = [(1024, 512, 32_000), (4096, 512, 32_000)]


def _method(name, backend):
    if name == "fused":
        return lambda h, w, t: token_logprobs(h, w, t, backend=backend)
    if name == "naive":
        return token_logprobs_reference
    if name == "liger":
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss
        loss = LigerFusedLinearCrossEntropyLoss(reduction="none")
        return lambda h, w, t: -loss(w, h, t)  # per-token cross-entropy = -logp
    if name == "matmuls":
        @torch.no_grad()
        def three_matmuls(h, w, t):  # what any method must compute: logits, then its two gradient products
            z = h @ w.T  # (N, V)
            z @ w, z.T @ h  # (N, D), (V, D)
        return three_matmuls
    raise ValueError(name)


def child(args):
    """One (method, shape) in this fresh process; prints one JSON line."""
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    N, D, V = args.child_shape
    g = torch.Generator().manual_seed(0)
    hidden = (torch.randn(N, D, generator=g) / D ** 0.5).to(dtype).to(device).requires_grad_()  # (N, D)
    weight = (torch.randn(V, D, generator=g)).to(dtype).to(device).requires_grad_(args.train_weight)  # (V, D)
    targets = torch.randint(0, V, (N,), generator=g).to(device)  # (N,)
    grad_out = torch.randn(N, generator=g).to(device)  # (N,)
    fn = _method(args.child, args.backend)

    def step():
        hidden.grad = weight.grad = None
        out = fn(hidden, weight, targets)  # (N,), or None for the bare matmuls
        if out is not None:
            (out * grad_out).sum().backward()

    if device.type == "cuda":
        step()  # warm-up: compilation, cuBLAS workspaces
        hidden.grad = weight.grad = None
    else:
        # warm up on tiny inputs: loads the BLAS kernels and thread pools, whose pages would count otherwise
        tiny = hidden[:8].detach().clone().requires_grad_(), weight[:64].detach().clone().requires_grad_(
            args.train_weight)
        out = fn(tiny[0], tiny[1], targets[:8] % 64)
        if out is not None:
            out.sum().backward()
        del tiny, out
    mem = PeakMemory(device)
    step()
    peak_mb = mem.peak() / 2 ** 20
    times = [timed(step, device) for _ in range(args.repeats)]
    print(json.dumps(dict(method=args.child, N=N, D=D, V=V, time_s=sorted(times)[len(times) // 2],
                          peak_mb=peak_mb)))


def _run_child(args, method, shape):
    cmd = [sys.executable, "-m", "minirlvr.kernels.bench_logprob", "--child", method,
           "--child-shape", *map(str, shape), "--device", args.device, "--dtype", args.dtype,
           "--repeats", str(args.repeats), "--backend", args.backend] + (["--train-weight"] if args.train_weight
                                                                         else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return dict(method=method, error=(proc.stderr.strip().splitlines() or ["failed"])[-1][:120])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _liger_available():
    try:
        import liger_kernel.transformers  # noqa: F401
        return True
    except ImportError:
        return False


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minirlvr.bench logprob", description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default=None, help="bfloat16 on CUDA, float32 on CPU by default")
    p.add_argument("--shapes", default=None, help="N,D,V;N,D,V;... (default: the GPU or the CPU grid)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per method (default 5 CUDA, 1 CPU)")
    p.add_argument("--train-weight", action="store_true", help="also differentiate the LM head (full fine-tune)")
    p.add_argument("--backend", default=None, help="fused backend (default: default_backend(device))")
    p.add_argument("--out", default=None, help="append one JSON line per (shape, method) to this file")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-shape", type=int, nargs=3, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cuda = args.device.startswith("cuda")
    args.dtype = args.dtype or ("bfloat16" if cuda else "float32")
    args.repeats = args.repeats or (5 if cuda else 1)
    args.backend = args.backend or default_backend(args.device)
    if args.child:
        return child(args)

    shapes = ([tuple(int(x) for x in s.split(",")) for s in args.shapes.split(";")] if args.shapes
              else GPU_SHAPES if cuda else CPU_SHAPES)
    methods = ["fused", "naive"] + (["liger"] if cuda and _liger_available() else []) + (["matmuls"] if cuda else [])
    device_name = torch.cuda.get_device_name(args.device) if cuda else f"CPU ({os.cpu_count()} cores visible)"
    print(f"device: {device_name}  dtype: {args.dtype}  fused backend: {args.backend}  "
          f"train weight: {args.train_weight}  repeats: {args.repeats}")
    if cuda and not _liger_available():
        print("Liger-Kernel not importable: its column is skipped")
    print(f"{'N':>6} {'D':>5} {'V':>7} {'N*V*4 MB':>9} | {'method':>8} {'time s':>8} {'peak MB':>9} | "
          f"{'time/naive':>10} {'peak/naive':>10}" + (f" {'time/3mm':>9}" if cuda else ""))
    for shape in shapes:
        N, D, V = shape
        rows = {m: _run_child(args, m, shape) for m in methods}
        naive = rows["naive"]
        for m, r in rows.items():
            lead = f"{N:>6} {D:>5} {V:>7} {N * V * 4 / 2 ** 20:>9.0f} | {m:>8}"
            if "error" in r:
                print(f"{lead} error: {r['error']}")
                continue
            ratios = ""
            if "error" not in naive:
                ratios = f"{r['time_s'] / naive['time_s']:>10.2f} {r['peak_mb'] / max(naive['peak_mb'], 1e-9):>10.3f}"
            if cuda and "error" not in rows["matmuls"]:
                ratios += f" {r['time_s'] / rows['matmuls']['time_s']:>9.2f}"
            print(f"{lead} {r['time_s']:>8.3f} {r['peak_mb']:>9.1f} | {ratios}")
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(dict(r, device=device_name, dtype=args.dtype, backend=args.backend,
                                            train_weight=args.train_weight)) + "\n")


if __name__ == "__main__":
    main()
