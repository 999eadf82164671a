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


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """tiny_folder(words, seed) -> a folder holding a random tiny Qwen2 and a word tokenizer over `words`, saved with
    save_pretrained, as `--model=PATH` loads it."""
    from minirlvr.engine.model import tiny_model, word_tokenizer

    def make(words, seed=0):
        path = tmp_path_factory.mktemp("tiny")
        tok = word_tokenizer(words)
        tiny_model(vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                   init_std=0.1, seed=seed).save_pretrained(path)
        tok.save_pretrained(path)
        return str(path)

    return make
