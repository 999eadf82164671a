"""Triton kernels, imported as `minirlvr.kernels` (never as a top-level `kernels`).

Files:
  logprobs.py       token_logprobs: fused per-token log-probs (and entropy) without (N, V) logits; its PyTorch twin
  attention.py      attention_mass: attention scores summed over key segments; its PyTorch twin
  triton_env.py     where Triton kernels can run here (compiled on CUDA, interpreted on CPU, or not at all)
  compile_check.py  `python -m minirlvr.kernels.compile_check`: compile both kernels for Hopper without a GPU

Each kernel lives in one file beside its plain-PyTorch reference, which is the specification, the CPU fallback and
the test oracle.

This folder sits at the checkout's root. Python puts the current or the script's folder first on `sys.path`
(`python -c`, `python -m`, notebooks, a script in the root), and there it would be found as a top-level package
named `kernels`, the name of Hugging Face's package that transformers imports when a model module loads. So when
imported under that name, this file hands over to the `kernels` found elsewhere on the path, or says what to do.
"""

if __name__ == "kernels":
    import importlib.machinery
    import importlib.util
    import os
    import sys

    _root = os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    _others = [p for p in sys.path if os.path.realpath(p or os.getcwd()) != _root]
    _spec = importlib.machinery.PathFinder.find_spec("kernels", _others)
    if _spec is None:
        raise ImportError(
            f"'import kernels' found minirlvr's Triton kernels folder ({os.path.dirname(__file__)}), which is "
            "imported as minirlvr.kernels and is not Hugging Face's `kernels` package, and no other package named "
            "`kernels` is installed. Install it (`pip install kernels`, which transformers >= 5 requires) or run "
            "from outside the checkout's root folder.")
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["kernels"] = _module  # the import statement returns what sys.modules holds once this file ends
    try:
        _spec.loader.exec_module(_module)
    except BaseException:
        del sys.modules["kernels"]
        raise
else:
    from minirlvr.kernels.attention import attention_mass, attention_mass_reference
    from minirlvr.kernels.logprobs import token_logprobs, token_logprobs_reference

    __all__ = ["token_logprobs", "token_logprobs_reference", "attention_mass", "attention_mass_reference"]
