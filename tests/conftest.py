"""Shared test setup. Triton kernels run under its interpreter on CPU tensors; the flag is read when a kernel is
decorated (at import), so it must be set here, before any test module imports minirlvr.kernels."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
