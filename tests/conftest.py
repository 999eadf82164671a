"""Shared test setup. Triton kernels run under its interpreter on CPU tensors; the flag is read when a kernel is
decorated (at import), so it must be set here, before any test module imports minirlvr.kernels."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny models' ops gain nothing from a second thread, and on a busy machine idle-spinning threads made a
    training step ~10x slower. Results do not depend on it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
