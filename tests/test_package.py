"""The install layout: kernels/ is importable only as minirlvr.kernels, never as a top-level `kernels`."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_kernels_imported_as_minirlvr_kernels():
    import minirlvr.kernels as k

    assert os.path.samefile(os.path.dirname(k.__file__), os.path.join(ROOT, "kernels"))
    assert callable(k.token_logprobs) and callable(k.attention_mass)


def test_no_top_level_kernels_module():
    # Run from a neutral folder so the repo root (which holds kernels/) is not on sys.path.
    spec_code = "import importlib.util, json; s = importlib.util.find_spec('kernels'); print(s.origin if s else None)"
    out = subprocess.run([sys.executable, "-c", spec_code], cwd="/", capture_output=True, text=True, check=True)
    origin = out.stdout.strip()
    # Hugging Face's `kernels` package may be installed; ours must never be what that name resolves to.
    assert origin == "None" or not origin.startswith(os.path.join(ROOT, "kernels"))


def test_bench_dispatcher_rejects_unknown_target():
    from minirlvr.bench import __main__ as bench

    with pytest.raises(SystemExit) as e:
        bench.main(["no-such-target"])
    assert "usage" in str(e.value)


def test_wheel_maps_kernels_under_minirlvr(tmp_path):
    # A non-editable install must put kernels/ at minirlvr/kernels/ and nowhere else.
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp_path), ROOT],
        check=True, capture_output=True,
    )
    assert (tmp_path / "minirlvr" / "kernels" / "logprobs.py").exists()
    assert (tmp_path / "minirlvr" / "assets" / "seed_tasks.jsonl").exists()  # package data: data build's seeds
    assert not (tmp_path / "kernels").exists()


def test_run_py_drops_its_folder_from_sys_path(monkeypatch):
    # `python run.py` puts the repo root first on sys.path, where kernels/ would shadow Hugging Face's `kernels`.
    import runpy

    monkeypatch.setattr(sys, "path", [ROOT] + list(sys.path))
    runpy.run_path(os.path.join(ROOT, "run.py"), run_name="run_as_module")
    assert all(os.path.abspath(p or os.curdir) != ROOT for p in sys.path)


# --- kernels/ imported as a top-level `kernels` from the checkout's root -------------------------------------------
# Python puts the current folder (python -c, python -m) or the script's folder first on sys.path; there kernels/
# would shadow Hugging Face's `kernels` package, which transformers >= 5 imports when a model module loads.

def _hf_kernels_installed():
    import importlib.metadata
    try:
        importlib.metadata.distribution("kernels")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


HF_KERNELS = pytest.mark.skipif(not _hf_kernels_installed(), reason="Hugging Face's `kernels` package is not installed")


def run_in_root(args, **kw):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env, **kw)


@HF_KERNELS
def test_python_c_in_root_imports_transformers_model_code():
    out = run_in_root(["-c", "import transformers.modeling_utils, kernels, minirlvr.kernels as mk; "
                             "from transformers import Qwen2ForCausalLM; print(kernels.__file__); print(mk.__file__)"])
    assert out.returncode == 0, out.stderr
    hf, ours = out.stdout.split()
    assert not hf.startswith(os.path.join(ROOT, "kernels")) and ours.startswith(os.path.join(ROOT, "kernels"))


@HF_KERNELS
def test_python_m_pytest_in_root_collects_model_tests():
    out = run_in_root(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_attention_hook.py"])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert " passed" in out.stdout and " failed" not in out.stdout


@HF_KERNELS
def test_script_in_root_loads_a_peft_adapter(tmp_path):
    """A user's script saved in the checkout's root (the README's TRL example is one) loads a LoRA adapter."""
    script = os.path.join(ROOT, f"_test_script_in_root_{os.getpid()}.py")
    with open(script, "w") as f:
        f.write(f"""
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import Qwen2Config, Qwen2ForCausalLM
config = Qwen2Config(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                     num_attention_heads=2, num_key_value_heads=1)
torch.manual_seed(0)
base = Qwen2ForCausalLM(config)
peft = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
peft.save_pretrained({str(tmp_path / "adapter")!r})
torch.manual_seed(0)
loaded = PeftModel.from_pretrained(Qwen2ForCausalLM(config), {str(tmp_path / "adapter")!r})
x = torch.tensor([[1, 2, 3]])
assert torch.equal(loaded(x).logits, peft(x).logits)
print("adapter loaded")
""")
    try:
        out = run_in_root([script])
    finally:
        os.remove(script)
    assert out.returncode == 0 and "adapter loaded" in out.stdout, out.stderr[-3000:]


def test_top_level_kernels_without_hugging_faces_package_says_what_to_do(tmp_path):
    # only the checkout on the path: the handover finds no other `kernels` and says so
    code = f"import sys; sys.path[:] = [{ROOT!r}] + [p for p in sys.path if 'site-packages' not in p]; import kernels"
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode != 0
    assert "minirlvr.kernels" in out.stderr and "pip install kernels" in out.stderr
