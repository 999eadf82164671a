""".ci/gpu_check on a machine without a GPU: it must skip every GPU section with a reason, lay out the kit, write its
report wherever it was called from (OUT set or unset), start afresh when rerun, respect its time budget, and exit 0.
It never runs the real GPU check: where nvidia-smi exists, GPU_CHECK_NO_GPU=1 makes it behave as without a GPU."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "gpu_check"


def run_check(cwd, out=None, **env):
    """bash .ci/gpu_check from folder `cwd`, with OUT=out (unset if None)."""
    env = dict(os.environ, PYTHON=sys.executable, **env)
    env.pop("OUT", None)
    if out is not None:
        env["OUT"] = str(out)
    if shutil.which("nvidia-smi"):
        env["GPU_CHECK_NO_GPU"] = "1"  # never start the ten-minute GPU run from the test suite
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["bash", str(SCRIPT)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def report_rows(report):
    """{section: status} from the report's table."""
    return {m[1]: m[2] for m in re.finditer(r"^\| ([\w.-]+) \| \d+ \| ([^|]+) \| \d+ \|$", report, re.M)}


def check_dry_run(proc, out):
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = (out / "report.md").read_text()
    rows = report_rows(report)
    assert rows.pop("setup") == "ok"  # the kit was laid out (the section checks minirlvr/kernels/logprobs.py)
    assert {"env", "logprob-headline", "kernel-tests", "logprob-grid", "attention", "attention-stage", "sampler-0.5b-bf16", "sampler-1.5b-4bit",
            "sampler-1.5b-bf16", "sampler-0.5b-4bit", "step-7b-12gb",
            "step-1.5b-vs-trl-12gb", "step-7b-vs-trl-24gb"} <= set(rows)
    assert list(rows).index("logprob-headline") < list(rows).index("kernel-tests")  # the headline comes first
    for name, status in rows.items():
        assert status.startswith("skipped: no NVIDIA GPU ("), (name, status)
        assert re.search(rf"^SKIP {name}: no NVIDIA GPU \(.+\)$", proc.stdout, re.M), name
    assert "kit laid out in" in (out / "log.txt").read_text()
    assert (out / "results.jsonl").exists()
    return report


def test_dry_run_with_out_set(tmp_path):
    out = tmp_path / "out"
    check_dry_run(run_check(tmp_path / "elsewhere", out), out)


def test_dry_run_with_out_unset_then_a_rerun_that_starts_afresh_within_its_budget(tmp_path):
    # the script moves to other folders: a relative default must have been made absolute first
    caller = tmp_path / "caller"
    out = caller / "gpu-out"
    proc = run_check(caller)
    check_dry_run(proc, out)
    assert f"report: {out / 'report.md'}" in proc.stdout
    # a warm machine reruns the script: nothing of the first run may survive, and a budget too small for any
    # section (under the 15 s one needs to start) skips them all but still reports
    (out / "results.jsonl").write_text('{"stale": 1}\n')
    proc = run_check(caller, GPU_CHECK_BUDGET="10")
    assert proc.returncode == 0
    assert (out / "results.jsonl").read_text() == ""
    assert "kit laid out" not in (out / "log.txt").read_text() and "SKIP setup: time budget spent" in proc.stdout
    report = (out / "report.md").read_text()
    assert report.count("# gpu_check report") == 1
    assert report_rows(report)["setup"] == "skipped: time budget spent"


def test_every_module_the_script_runs_exists():
    """The script cannot run on this machine; at least every `python -m MODULE` it names must exist, so a file that
    moves cannot leave it pointing nowhere (the layout change once did)."""
    import importlib.util
    import re

    script = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".ci", "gpu_check")).read()
    modules = set(re.findall(r'-m (minirlvr[\w.]*)', script))
    assert len(modules) >= 2
    missing = [m for m in sorted(modules) if importlib.util.find_spec(m) is None]
    assert not missing, missing
    from minirlvr.bench.__main__ import TARGETS

    for target in re.findall(r'-m minirlvr\.bench (\w+)', script):
        assert target in TARGETS, target
