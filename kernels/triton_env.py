"""Is Triton importable, and does it run interpreted in this process: the one rule both kernel files use.

Triton picks interpreter or compiler once per process, when `@triton.jit` decorates a function: it reads
TRITON_INTERPRET with its own notion of "true" (Triton 3.9 takes 1, true, yes, on... in any case; older releases
took only "1"). Rather than re-parse the variable and drift from whichever Triton is installed, we ask Triton:
decorate a no-op at import and look at what came back. tests/conftest.py sets TRITON_INTERPRET=1 before anything
imports triton; a GPU run sets TRITON_INTERPRET=0.

Without the triton package (a CPU-only install) `triton` is None, `jit` returns functions undecorated and
`tl.constexpr` still exists, so the kernel files import and their PyTorch backends work.
This file launches nothing and picks no backend.
"""

import torch

try:
    import triton
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction
except ImportError:
    triton = None
    InterpretedFunction = ()  # isinstance(x, ()) is always False

    class tl:  # only so that kernel signatures (`BLOCK: tl.constexpr`) still parse
        constexpr = None


def jit(fn):
    """`triton.jit`, or the plain function when triton is not installed."""
    return fn if triton is None else triton.jit(fn)


def _noop():
    pass


INTERPRETED = isinstance(jit(_noop), InterpretedFunction)  # what @triton.jit does to every kernel in this process


def runs_triton(device):
    """True when a Triton kernel can run on tensors on `device` here: compiled on CUDA, or interpreted anywhere."""
    return triton is not None and (INTERPRETED or torch.device(device).type == "cuda")


def kernel_device():
    """Where this process runs Triton kernels: ("cpu", "interpreted") under the interpreter, ("cuda", "compiled")
    with a GPU, else (None, why not). The tests parametrize their Triton cases with it."""
    if triton is None:
        return None, "triton not importable"
    if INTERPRETED:
        return "cpu", "interpreted"
    if torch.cuda.is_available():
        return "cuda", "compiled"
    return None, "Triton compiled mode needs CUDA"


def check_triton_device(device, fallback):
    """Raise ValueError saying why backend='triton' cannot run on `device` tensors, and what to use instead."""
    if triton is None:
        raise ValueError(f"backend='triton' needs the triton package, which is not importable here; "
                         f"use backend='{fallback}'")
    if not runs_triton(device):
        raise ValueError(f"backend='triton' on {torch.device(device)} tensors needs CUDA, or Triton's interpreter "
                         f"(TRITON_INTERPRET=1 set before triton is imported); or use backend='{fallback}'")
