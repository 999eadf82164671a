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
    from minirlvr import bench

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
