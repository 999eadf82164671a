"""The command line: `minirlvr` / `python run.py` list every command, and every command answers --help.

Run from a temporary folder (not the checkout), in subprocesses: the installed console script, run.py by its path,
and one Python process that calls `minirlvr.cli.main` for every --help (each import of torch costs seconds)."""

import json
import logging
import os
import subprocess
import sys
from dataclasses import fields

import pytest

from minirlvr.cli import COMMANDS
from minirlvr.engine.config import HELP, TrainConfig

RUN_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "run.py")
SCRIPT = os.path.join(os.path.dirname(sys.executable), "minirlvr")
BENCH_TARGETS = ("verifiers", "logprob", "attention", "sampler", "judge")  # at least these

# Calls main(argv) for each argv of argv[1] (JSON) and for `bench <target> --help` / `-h` of every target in
# bench.TARGETS; prints {argv: [exit code, stdout, stderr]} as JSON, with the targets under "TARGETS".
HELPS = """
import contextlib, io, json, sys
from minirlvr.bench.__main__ import TARGETS
from minirlvr.cli import main
got = {"TARGETS": list(TARGETS)}
for argv in json.loads(sys.argv[1]) + [["bench", t, flag] for t in TARGETS for flag in ("--help", "-h")]:
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as e:
            code = e.code
    got[" ".join(argv)] = [code, out.getvalue(), err.getvalue()]
print(json.dumps(got))
"""


def run(args, cwd):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_console_script_lists_every_command(tmp_path):
    assert os.path.exists(SCRIPT), f"no {SCRIPT}: run `pip install -e .` in the checkout"
    res = run([SCRIPT, "--help"], tmp_path)
    assert res.returncode == 0, res.stderr
    for name, (_, text) in COMMANDS.items():
        assert f"  {name}" in res.stdout and text in res.stdout
    assert "bench" in COMMANDS


def test_unknown_command_is_refused_with_the_list(tmp_path):
    res = run([SCRIPT, "trian", "--steps=3"], tmp_path)
    assert res.returncode != 0
    assert "unknown command 'trian'" in res.stderr and "did you mean 'train'" in res.stderr
    assert all(f"  {name}" in res.stderr for name in COMMANDS)


def test_run_py_train_help_lists_every_config_key(tmp_path):
    res = run([sys.executable, RUN_PY, "train", "--help"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "usage: python run.py train" in res.stdout and "tiny" in res.stdout and "gpu" in res.stdout
    for f in fields(TrainConfig):
        assert f"--{f.name} " in res.stdout, f.name
        assert HELP[f.name].split()[0] in res.stdout


def test_every_config_key_has_help():
    assert set(HELP) == {f.name for f in fields(TrainConfig)}
    assert all(text.strip() for text in HELP.values())


def test_every_command_answers_help(tmp_path):
    helps = ([[name, flag] for name in COMMANDS for flag in ("--help", "-h")]
             + [["data", "build", "--help"], ["data", "convert", "--help"], ["--help"],
                ["reproduce", "--preset", "miniature", "--help"]])
    others = [["--list"], ["--no-such-option"], ["bench", "no-such-target"]]
    res = run([sys.executable, "-c", HELPS, json.dumps(helps + others)], tmp_path)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    targets = got.pop("TARGETS")
    assert set(BENCH_TARGETS) <= set(targets)
    helps += [["bench", target, flag] for target in targets for flag in ("--help", "-h")]
    for argv in helps:
        code, out, err = got[" ".join(argv)]
        assert code in (0, None) and "usage" in out.lower(), (argv, code, err[-2000:])
    assert all(f"  {name}" in got["--help"][1] for name in COMMANDS)
    assert all(f"  {target}" in got["bench --help"][1] for target in targets)
    assert "build" in got["data --help"][1] and "convert" in got["data --help"][1]
    # arguments starting with '-' still go to the pipeline (python run.py --quick, --list, --preset NAME ...)
    assert got["--list"][0] in (0, None) and "miniature" in got["--list"][1]
    code, _, err = got["--no-such-option"]
    assert code not in (0, None) and "unknown option '--no-such-option'" in str(code) + err
    code, _, err = got["bench no-such-target"]
    assert code not in (0, None) and all(f"  {target}" in str(code) for target in targets)


# Calls main(argv) for argv = argv[1] (JSON) and prints, as JSON, which of the heavy packages it imported
HELP_IMPORTS = """
import contextlib, io, json, sys
from minirlvr.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        main(json.loads(sys.argv[1]))
    except SystemExit:
        pass
heavy = ("torch", "transformers", "peft", "matplotlib", "bitsandbytes")
print(json.dumps({"usage": "usage" in out.getvalue().lower(), "imported": [m for m in heavy if m in sys.modules]}))
"""


@pytest.mark.parametrize("argv", [[name, "--help"] for name in COMMANDS]
                         + [["data", "build", "--help"], ["data", "convert", "--help"], ["--help"]], ids=" ".join)
def test_help_imports_no_model_code(argv, tmp_path):
    """`run.py <command> --help` answers without torch, transformers, peft or matplotlib (their import took
    seconds: `attention --help` took 14 s on a cold disk). One fresh process per command: sys.modules is its own."""
    res = run([sys.executable, "-c", HELP_IMPORTS, json.dumps(argv)], tmp_path)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["usage"] and got["imported"] == [], (argv, got)


def test_refines_dataset_code_flag_is_the_sandboxs():
    # commands/refine.py writes the flag out (the reward package loads torch); the sandbox's errors name it
    from minirlvr.commands import refine as refine_cmd
    from minirlvr.reward.sandbox import RUN_FLAG

    assert refine_cmd.RUN_FLAG == RUN_FLAG and RUN_FLAG in refine_cmd.build_parser().format_help()


def test_bitsandbytes_kernels_hint_is_dropped_only_when_the_package_is_missing():
    from minirlvr.engine.model import _not_kernels_missing

    msg = "Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you already ..."

    def record(exc):
        return logging.LogRecord("bitsandbytes.backends.cpu.ops", logging.WARNING, "ops.py", 1, msg, (exc,), None)

    assert not _not_kernels_missing(record(ModuleNotFoundError("No module named 'kernels'", name="kernels")))
    assert _not_kernels_missing(record(ImportError("cannot import name 'get_kernel' from 'kernels'")))
    assert _not_kernels_missing(record(ModuleNotFoundError("No module named 'huggingface_hub'",
                                                           name="huggingface_hub")))
    assert _not_kernels_missing(logging.LogRecord("x", logging.WARNING, "f.py", 1, "other", (), None))


def test_help_into_a_closed_pipe_ends_quietly():
    # `python run.py --help | head -1`: the reader goes away; no BrokenPipeError traceback
    for args in (["--help"], ["verify", "--help"]):
        proc = subprocess.Popen([sys.executable, RUN_PY, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.close()  # before the child has written anything: its first write meets a closed pipe
        err = proc.stderr.read().decode()
        proc.wait(timeout=60)
        assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_help_pages_show_defaults_and_whole_descriptions(capsys):
    from minirlvr.commands import eval as eval_cmd
    from minirlvr.commands import refine as refine_cmd

    with pytest.raises(SystemExit):
        refine_cmd.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere
    assert "3. learnability pilot" in text and "(default: 8)" in text and "(default: None)" not in text
    with pytest.raises(SystemExit):
        eval_cmd.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--batch-rows BATCH_ROWS rows (prompts x samples) decoded together (default: 64)" in out


@pytest.fixture
def machine(monkeypatch):
    """A machine of N cores (os.sched_getaffinity), torch's threads restored after the test."""
    import torch

    before = torch.get_num_threads()

    def cores(n):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)))

    yield cores
    torch.set_num_threads(before)


def test_every_command_sets_the_threads_of_this_kind_of_machine(machine, tmp_path):
    """One helper (engine/machine.cpu_threads) behind every command's --threads: given, it is used; not given, a
    machine of <= 2 cores gets 1 thread (measured 4-9x faster than 2 there under load) and a larger one keeps
    torch's. `train` takes --threads N, --threads=N and --threads N in its config.json."""
    import torch

    from minirlvr.commands import attention, eval, judge_audit, refine, reproduce, train

    missing = str(tmp_path / "missing.jsonl")
    commands = {  # argv that sets the threads, then fails on the missing data file (no model is loaded)
        "train": (train.main, [f"--data={missing}", "--model=m", f"--out_dir={tmp_path / 'run'}"]),
        "eval": (eval.main, ["--model", "m", "--bench", "ifeval", "--data", missing, "--out", str(tmp_path / "e")]),
        "refine": (refine.main, ["--data", missing, "--model", "m", "--out", str(tmp_path / "r.jsonl")]),
        "attention": (attention.main, ["--model", str(tmp_path), "--data", missing]),
        "judge-audit": (judge_audit.main, ["--model", "m", "--data", missing, "--responses", missing]),
        "reproduce": (reproduce.main, ["--preset", "qwen2.5-0.5b", "--out", str(tmp_path / "p")]),
    }

    def threads_after(main, argv):
        with pytest.raises((SystemExit, Exception)):
            main(argv)
        return torch.get_num_threads()

    for name, (main, argv) in commands.items():
        machine(2)
        torch.set_num_threads(2)
        assert threads_after(main, argv) == 1, name
        machine(16)
        torch.set_num_threads(3)  # as torch left it: not changed
        assert threads_after(main, argv) == 3, name
        dashed = "--threads=2" if name == "train" else "--threads"
        assert threads_after(main, argv + ([dashed] if name == "train" else [dashed, "2"])) == 2, name
    assert train.parse_args(["--threads", "4"]).threads == 4 == train.parse_args(["--threads=4"]).threads


def test_4bit_is_spelled_one_way_in_every_command_that_loads_a_model():
    """`--4bit` loads the command's model in 4-bit NF4 everywhere (#25: it was spelled five ways); train takes it as
    its config key load_in_4bit, and any true/false key given alone is true."""
    from minirlvr.commands import attention, eval as eval_cmd, judge_audit, refine
    from minirlvr.engine.config import parse_args as train_args

    assert attention.parse_args(["--model", "m", "--data", "d", "--4bit"]).load_4bit is True
    assert eval_cmd.parse_args(["--model", "m", "--bench", "ifeval", "--data", "d", "--4bit"]).load_4bit is True
    assert judge_audit.parser().parse_args(["--model", "m", "--data", "d", "--responses", "r", "--4bit"]).load_in_4bit
    assert refine.build_parser().parse_args(["--data", "d", "--model", "m", "--out", "o", "--4bit"]).load_in_4bit
    cfg = train_args(["--model=m", "--data=d", "--4bit", "--use-lora", "--steps", "3"])
    assert cfg.load_in_4bit is True and cfg.use_lora is True and cfg.steps == 3
    assert train_args(["--model=m", "--data=d", "--4bit=false"]).load_in_4bit is False
