"""`python -m minirlvr.bench logprob [options]`: fused token log-probs vs full logits, forward + backward.

For each shape (N tokens, D hidden, V vocabulary) it times one forward + backward of sum(g * logp) and takes its
peak extra memory, for
    fused        `token_logprobs`, default backend (Triton on CUDA, the chunked PyTorch twin on CPU)
    fused+ent    the same with the entropy output, as training logs it (CPU: one more scratch tile)
    naive        full logits in the input dtype, log_softmax, gather: the usual path, bf16 on a GPU
    naive-fp32   `token_logprobs_reference`, the same upcast to fp32 (CUDA with bf16/fp16 inputs: 2nd baseline)
    liger        Liger-Kernel's LigerFusedLinearCrossEntropyLoss(reduction="none"), where importable (CUDA)
    matmuls      the three matmuls no method can avoid: logits, grad_hidden, grad_weight (CUDA)
and prints ratios against naive from the same run. On CUDA it also prints how far each method's logp and
grad_hidden are from naive-fp32's: max |logp - ref| and |grad - ref| / |ref| (Frobenius norms).

Peak memory is the high-water mark above what the inputs already hold (minirlvr.bench.measure.PeakMemory):
  CUDA  the allocator's peak, reset before each method. One fresh process per shape runs every method, with
        inputs generated on the GPU, so Triton compiles once and nothing waits for a CPU generator.
  CPU   the process's resident-set high-water mark, with glibc's mmap threshold pinned so that freed tiles leave
        the resident set (unpinned, identical runs differed by up to 100 MB). One fresh process per (method, shape),
        --runs times; the table gives the median and the spread (min-max) of the runs.
Both include the gradient of `hidden` (and of `weight` with --train-weight), which every method allocates.
Time: the median of --repeats runs (CUDA: after a warm-up, synchronized), measured before the memory run.

It deliberately does not tune block sizes or compare against other fused kernels than Liger's.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

import torch

from minirlvr.bench.measure import PeakMemory, timed
from minirlvr.data import to_json
from minirlvr.kernels.logprobs import default_backend, token_logprobs, token_logprobs_reference

HEADLINE = (16384, 3584, 151_936)  # N, D, V: 16k tokens of Qwen2.5-7B; the README's GPU goal is stated here
GPU_SHAPES = [HEADLINE] + [(n, d, 151_936) for d in (896, 1536, 3584) for n in (1024, 4096, 16384)
                           if (n, d, 151_936) != HEADLINE]
CPU_SHAPES = [(4096, 256, 32_000), (4096, 512, 32_000)]


def naive_logprobs(hidden, weight, targets):
    """The usual path, in the input dtype: (N, V) logits, log_softmax, gather -> (N,) fp32."""
    logits = hidden @ weight.T  # (N, V)
    return torch.log_softmax(logits, -1).gather(-1, targets[:, None]).squeeze(-1).float()  # (N,)


def _method(name, backend):
    if name == "fused":
        return lambda h, w, t: token_logprobs(h, w, t, backend=backend)
    if name == "fused+ent":
        return lambda h, w, t: token_logprobs(h, w, t, return_entropy=True, backend=backend)[0]
    if name == "naive":
        return naive_logprobs
    if name == "naive-fp32":
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


def _inputs(args, shape):
    """hidden (N, D) with logits of std ~1, weight (V, D), targets (N,), upstream gradient (N,): generated on the
    benchmark's device (a (151,936 x 3,584) CPU randn alone took ~11 s)."""
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    N, D, V = shape
    g = torch.Generator(device=device).manual_seed(0)
    hidden = (torch.randn(N, D, generator=g, device=device) / D ** 0.5).to(dtype).requires_grad_()  # (N, D)
    weight = torch.randn(V, D, generator=g, device=device).to(dtype).requires_grad_(args.train_weight)  # (V, D)
    targets = torch.randint(0, V, (N,), generator=g, device=device)  # (N,)
    grad_out = torch.randn(N, generator=g, device=device)  # (N,)
    return hidden, weight, targets, grad_out


def _step(fn, hidden, weight, targets, grad_out):
    """One forward + backward of sum(grad_out * logp); returns logp (None for the bare matmuls)."""
    hidden.grad = weight.grad = None
    logp = fn(hidden, weight, targets)  # (N,)
    if logp is not None:
        (logp * grad_out).sum().backward()
    return logp


def _measure(fn, hidden, weight, targets, grad_out, repeats, device):
    """Median time of `repeats` steps, then the peak memory of one more; returns (row, logp of that step)."""
    times = [timed(lambda: _step(fn, hidden, weight, targets, grad_out), device) for _ in range(repeats)]
    hidden.grad = weight.grad = None
    if device.type == "cuda":
        torch.cuda.empty_cache()
    mem = PeakMemory(device)  # on a CPU this pins glibc's mmap threshold: after timing
    logp = _step(fn, hidden, weight, targets, grad_out)
    peak_mb = mem.peak() / 2 ** 20
    return dict(time_s=statistics.median(times), peak_mb=peak_mb), logp


def child(args):
    """One shape in this fresh process: every method on CUDA, the one --child method on a CPU. One JSON line each."""
    device = torch.device(args.device)
    N, D, V = args.child_shape
    hidden, weight, targets, grad_out = _inputs(args, args.child_shape)
    results = {}
    for name in args.child.split(","):
        row = dict(method=name, N=N, D=D, V=V)
        try:
            fn = _method(name, args.backend)
            if device.type == "cuda":
                _step(fn, hidden, weight, targets, grad_out)  # warm-up: compilation, cuBLAS workspaces
            else:
                # warm up on tiny inputs: loads the BLAS kernels and thread pools, whose pages would count otherwise
                tiny_h = hidden[:8].detach().clone().requires_grad_()
                tiny_w = weight[:64].detach().clone().requires_grad_(args.train_weight)
                _step(fn, tiny_h, tiny_w, targets[:8] % 64, grad_out[:8])
                del tiny_h, tiny_w
            stats, logp = _measure(fn, hidden, weight, targets, grad_out, args.repeats, device)
            row.update(stats)
            if logp is not None:
                results[name] = (logp.detach(), hidden.grad)
        except Exception as e:  # one failing method (no Liger, out of memory) must not hide the others
            row["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:160]
        print(json.dumps(row), flush=True)
    if "naive-fp32" in results:
        ref_logp, ref_grad = results["naive-fp32"]
        for name, (logp, grad) in results.items():
            dg = (grad.float() - ref_grad.float()).norm() / ref_grad.float().norm()
            print(json.dumps(dict(method=name, N=N, D=D, V=V, max_abs_logp_err=float((logp - ref_logp).abs().max()),
                                  rel_grad_err=float(dg))), flush=True)


def _run_child(args, methods, shape):
    """Rows printed by one child process; methods it never reported get its error."""
    cmd = [sys.executable, "-m", "minirlvr.bench.logprob", "--child", ",".join(methods),
           "--child-shape", *map(str, shape), "--device", args.device, "--dtype", args.dtype,
           "--repeats", str(args.repeats), "--backend", args.backend] + (["--train-weight"] if args.train_weight
                                                                         else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    done = {r["method"] for r in rows}
    err = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1][:160]
    return rows + [dict(method=m, error=err) for m in methods if m not in done]


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
    p.add_argument("--shapes", default=None, help="N,D,V;N,D,V;... (default: the GPU grid, headline first, or the "
                                                  "CPU grid)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per method (default 5 CUDA, 1 CPU)")
    p.add_argument("--runs", type=int, default=1, help="CPU: fresh processes per (method, shape); the table gives "
                                                       "the median peak and the spread")
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
    methods = ["fused", "fused+ent", "naive"]
    if cuda:
        methods = (["fused", "naive"] + (["naive-fp32"] if args.dtype != "float32" else [])
                   + (["liger"] if _liger_available() else []) + ["matmuls"])
    device_name = torch.cuda.get_device_name(args.device) if cuda else f"CPU ({os.cpu_count()} cores visible)"
    print(f"device: {device_name}  dtype: {args.dtype}  fused backend: {args.backend}  "
          f"train weight: {args.train_weight}  repeats: {args.repeats}" + ("" if cuda else f"  runs: {args.runs}"),
          flush=True)
    if cuda and not _liger_available():
        print("Liger-Kernel not importable: its row is skipped")
    print(f"{'N':>6} {'D':>5} {'V':>7} {'N*V*4 MB':>9} | {'method':>10} {'time s':>8} {'peak MB':>9} "
          f"{'(min-max)':>15} | {'time/naive':>10} {'peak/naive':>10}" + (f" {'time/3mm':>9}" if cuda else ""),
          flush=True)
    for shape in shapes:
        N, D, V = shape
        if cuda:
            got = _run_child(args, methods, shape)
        else:
            got = []
            for m in methods:
                runs = [_run_child(args, [m], shape)[0] for _ in range(args.runs)]
                ok = [r for r in runs if "error" not in r]
                if len(ok) < len(runs):
                    got.append(next(r for r in runs if "error" in r))
                    continue
                peaks = [r["peak_mb"] for r in ok]
                got.append(dict(ok[0], time_s=statistics.median(r["time_s"] for r in ok),
                                peak_mb=statistics.median(peaks), peak_mb_runs=peaks))
        rows = {r["method"]: r for r in got if "max_abs_logp_err" not in r}
        naive, mm = rows.get("naive", {}), rows.get("matmuls", {})
        for m, r in rows.items():
            lead = f"{N:>6} {D:>5} {V:>7} {N * V * 4 / 2 ** 20:>9.0f} | {m:>10}"
            if "error" in r:
                print(f"{lead} error: {r['error']}", flush=True)
                continue
            runs = r.get("peak_mb_runs", [r["peak_mb"]])
            spread = f"({min(runs):.1f}-{max(runs):.1f})" if len(runs) > 1 else ""
            ratios = ""
            if "peak_mb" in naive:
                ratios = f"{r['time_s'] / naive['time_s']:>10.2f} {r['peak_mb'] / max(naive['peak_mb'], 1e-9):>10.4f}"
            if "time_s" in mm:
                ratios += f" {r['time_s'] / mm['time_s']:>9.2f}"
            print(f"{lead} {r['time_s']:>8.3f} {r['peak_mb']:>9.1f} {spread:>15} | {ratios}", flush=True)
        for r in got:
            if "max_abs_logp_err" in r and r["method"] != "naive-fp32":
                print(f"{'':>32}   {r['method']:>10} vs naive-fp32: max |dlogp| {r['max_abs_logp_err']:.2e}, "
                      f"|d grad_hidden| / |grad_hidden| {r['rel_grad_err']:.2e}", flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.writelines(to_json(dict(r, N=N, D=D, V=V, device=device_name, dtype=args.dtype,
                                             backend=args.backend, train_weight=args.train_weight)) + "\n"
                             for r in got)


if __name__ == "__main__":
    main()
