"""`TRITON_INTERPRET=0 python -m minirlvr.kernels.compile_check [logprobs] [attention] [--json]`: compile every
shipped variant of the Triton kernels to an sm_90a cubin (H100 / H200) on a machine without a GPU, and print what
ptxas reports for each: registers, stack frame, spill bytes, and the shared memory Triton allocates.

The interpreter type-checks nothing and says nothing about registers, so this is the check that the kernels
compile, spill nothing and fit in shared memory before any GPU time is spent. tests/test_logprobs.py and
tests/test_attention_kernel.py run it and require zero spills and shared memory within sm_90's 227 KB.
Triton must be in compiled mode when `minirlvr.kernels` is imported: run it in a fresh process with
TRITON_INTERPRET unset or 0 (the tests do). It needs triton's bundled ptxas, no GPU and no CUDA driver.

What a launch specializes is modelled by hand: pointers 16-byte aligned; sizes, strides and D multiples of 16
where contiguous tensors with d % 16 == 0 give that; unit strides constant. It runs nothing and times nothing.
"""

import contextlib
import functools
import io
import json
import os
import re
import subprocess
import sys
import tempfile

import torch

SM90_SHARED_LIMIT = 227 * 1024  # bytes of shared memory one block may use on sm_90 (CUDA programming guide)
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def compile_sm90(kernel, signature, constexprs, options, divisible=()):
    """Compile `kernel` for sm_90a with these argument types and constants; returns ptxas's figures as a dict:
    registers, stack, spill_stores, spill_loads (bytes per thread) and shared (bytes per block)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    sig = {a: signature.get(a, "constexpr") for a in kernel.arg_names}  # the kernel's argument order
    attrs = {(list(sig).index(a),): [["tt.divisibility", 16]] for a in divisible}
    log = io.StringIO()
    os.environ["TRITON_DUMP_PTXAS_LOG"] = "1"  # Triton prints ptxas -v's log to stdout
    with contextlib.redirect_stdout(log):
        compiled = triton.compile(ASTSource(kernel, sig, constexprs=constexprs, attrs=attrs),
                                  target=GPUTarget("cuda", 90, 32), options=options)
    frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", log.getvalue())
    regs = re.search(r"Used (\d+) registers", log.getvalue())
    if frame is None or regs is None:
        raise RuntimeError(f"no ptxas figures in Triton {triton.__version__}'s log (is TRITON_DUMP_PTXAS_LOG "
                           f"supported?):\n{log.getvalue()[-2000:]}")
    stack, stores, loads = map(int, frame.groups())
    return dict(registers=int(regs.group(1)), stack=stack, spill_stores=stores, spill_loads=loads,
                shared=int(compiled.metadata.shared))


def _split_options(cfg):
    consts = dict(cfg)
    return consts, dict(num_warps=consts.pop("num_warps"), num_stages=consts.pop("num_stages"))


def logprobs_variants():
    """(name, kernel, signature, constexprs, options, divisible) for every dtype, with and without entropy."""
    from minirlvr.kernels import logprobs as lp

    fwd = {"h_ptr": "*{dt}", "w_ptr": "*{dt}", "t_ptr": "*i64", "m_ptr": "*fp32", "s0_ptr": "*fp32",
           "s1_ptr": "*fp32", "zt_ptr": "*fp32", "N": "i32", "V": "i32", "D": "i32", "inv_temp": "fp32",
           "blocks_per_split": "i32"}
    bwd = {"h_ptr": "*{dt}", "w_ptr": "*{dt}", "t_ptr": "*i64", "m_ptr": "*fp32", "logs0_ptr": "*fp32",
           "g_ptr": "*fp32", "d_ptr": "*{dt}", "N": "i32", "D": "i32", "c0": "i32", "width": "i32",
           "d_stride": "i32", "inv_temp": "fp32"}
    for dt, dtype in DTYPES.items():
        for name, kernel, sig, extra in (("forward+entropy", lp._logprob_fwd_kernel, fwd, dict(ENTROPY=True)),
                                         ("forward", lp._logprob_fwd_kernel, fwd, dict(ENTROPY=False)),
                                         ("dlogits", lp._logprob_dlogits_kernel, bwd, {})):
            consts, options = _split_options(dict(lp._launch_config(dtype), **extra))
            sig = {k: v.format(dt=dt) for k, v in sig.items()}
            divisible = [a for a in sig if a.endswith("_ptr") or a in ("D", "d_stride")]
            yield f"logprobs {name} {dt}", kernel, sig, consts, options, divisible


def attention_variants(head_dims=(128, 256)):
    """The same for attention_mass: every dtype at head dims 128 (Qwen, Llama) and 256 (the largest: the most
    registers and shared memory), GQA group 7, causal, S <= 16 segments."""
    from minirlvr.kernels import attention as A

    strides = [f"stride_{t}{x}" for t, xs in (("q", "bhtd"), ("k", "bhtd"), ("s", "bt"), ("o", "bhts")) for x in xs]
    unit = ("stride_qd", "stride_kd", "stride_st", "stride_os")  # contiguous last dimensions: specialized to 1
    for dt, dtype in DTYPES.items():
        for d in head_dims:
            sig = dict(q_ptr=f"*{dt}", k_ptr=f"*{dt}", seg_ptr="*i32", out_ptr="*fp32",
                       **{s: "i32" for s in strides if s not in unit}, H="i32", Tq="i32", Tk="i32", D="i32",
                       S="i32", qk_scale="fp32")
            consts, options = _split_options(A._launch_config(dtype))
            consts.update({s: 1 for s in unit}, GROUP=7, CAUSAL=True, UPCAST=False, BLOCK_D=d, BLOCK_S=16,
                          QK_PRECISION="ieee" if dtype == torch.float32 else "tf32")
            divisible = [a for a in sig if a.endswith("_ptr") or (a.startswith("stride_") and a[-1] in "bht"
                                                                  and a not in unit) or a == "D"]
            yield f"attention d={d} {dt}", A._attention_mass_kernel, sig, consts, options, divisible


@functools.lru_cache(maxsize=None)
def figures_sm90():
    """Every variant of both kernels compiled once per process, in a fresh process in compiled mode (the tests
    run the interpreter) with an empty Triton cache, so that everything really compiles: one dict per variant
    with its name, num_warps, num_stages and ptxas's figures. One process for both kernel files, because its
    first compilation alone takes seconds."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, TRITON_INTERPRET="0", TRITON_CACHE_DIR=cache, TRITON_DEFAULT_FP_FUSION="1")
        proc = subprocess.run([sys.executable, "-m", "minirlvr.kernels.compile_check", "--json"], env=env,
                              capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"compile_check failed:\n{proc.stderr[-3000:]}")
    return tuple(json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return
    from minirlvr.kernels.triton_env import INTERPRETED, triton

    if triton is None or INTERPRETED:
        sys.exit("compile_check needs triton in compiled mode: run it with TRITON_INTERPRET unset or 0")
    which = [a for a in argv if not a.startswith("--")] or ["logprobs", "attention"]
    variants = {"logprobs": logprobs_variants, "attention": attention_variants}
    print(f"triton {triton.__version__}, target sm_90a; shared-memory limit {SM90_SHARED_LIMIT} bytes", flush=True)
    for group in which:
        for name, kernel, sig, consts, options, divisible in variants[group]():
            r = compile_sm90(kernel, sig, consts, options, divisible)
            if "--json" in argv:
                print(json.dumps(dict(variant=name, **options, **r)), flush=True)
            else:
                print(f"{name:<32} warps {options['num_warps']} stages {options['num_stages']}: "
                      f"{r['registers']:>3} registers, stack {r['stack']} B, spill stores {r['spill_stores']} B, "
                      f"loads {r['spill_loads']} B, shared {r['shared'] / 1024:.1f} KB", flush=True)


if __name__ == "__main__":
    main()
