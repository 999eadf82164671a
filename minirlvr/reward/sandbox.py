"""Run check functions that come from a data file (VerInstruct's rule checkers) in sandboxed subprocesses.

    verdicts = run_checks([Check(code, instruction, response), ...], allow=args.run_dataset_code)
    verdicts[k].ok, verdicts[k].reason     # reason is None when the check ran cleanly and returned a bool

Dataset code never runs in this process, and never without `allow=True` (the CLI flag --run-dataset-code):
without it, run_checks raises before anything is started. With it, checks go in batches to a fresh
`python -I -B sandbox_worker.py` per batch, in an empty temporary folder (its cwd, HOME and TMPDIR) with a
clean environment; the worker confines itself before the first check (sandbox_worker.py: rlimits on memory,
CPU, file size, files and processes; root dropped to nobody; an audit hook refusing sockets, subprocesses and
writes outside the folder). Each check has `timeout_s` seconds of wall time, counted from the previous answer.
A check that times out, crashes the worker (os._exit, a signal, the CPU limit) or tries something refused is a
failed check with its reason; the worker is then replaced and the batch goes on with the next check. Raising,
sys.exit, running out of memory and returning anything but a bool are failed checks too. Only a worker that
cannot start at all (a broken Python) is an error.

`python -m minirlvr.reward.sandbox --bench` times batched workers against one worker per check.
This file does not know what a check means or how records hold them (rule_checks.py).
"""

import argparse
import json
import os
from importlib import resources
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

RUN_FLAG = "--run-dataset-code"
WORKER = str(resources.files("minirlvr.reward") / "sandbox_worker.py")  # run by path: the worker never imports minirlvr
STARTUP_S = 60.0  # a loaded machine can take seconds to start Python; no dataset code runs before "ready"


class SandboxError(RuntimeError):
    """Dataset code was asked to run without the flag, or the sandbox itself cannot start."""


@dataclass
class Check:
    code: str  # Python source defining check_following(instruction, response) -> bool
    instruction: str
    response: str


@dataclass
class Verdict:
    ok: bool
    reason: str = None  # None: ran cleanly; else why the check failed (timeout, crash, refused, exception, ...)


def _env(tmp):
    return {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


def _read_line(fd, buf, deadline):
    """(line, rest) with line None on timeout and b"" on end of file."""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, buf
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"", buf
            buf += chunk
    line, _, rest = buf.partition(b"\n")
    return line, rest


def _kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _exit_reason(rc):
    if rc is not None and rc < 0:
        name = signal.Signals(-rc).name
        return f"crashed: killed by {name}" + (" (CPU time limit)" if name == "SIGXCPU" else "")
    return f"crashed: the worker exited with code {rc}"


def _run_worker(checks, timeout_s, memory_mb):
    """Verdicts for a prefix of `checks` (at least one): one worker, stopped at the first timeout or crash."""
    cpu_s = int(timeout_s * len(checks)) + 10  # a backstop; the wall-clock deadline per check comes first
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="minirlvr-sandbox-", ignore_cleanup_errors=True) as tmp:
        jobs = os.path.join(tmp, ".jobs.jsonl")
        with open(jobs, "w", encoding="utf-8") as f:
            for c in checks:
                f.write(json.dumps({"code": c.code, "instruction": c.instruction, "response": c.response}) + "\n")
        proc = subprocess.Popen([sys.executable, "-I", "-B", WORKER, jobs, tmp, str(memory_mb), str(cpu_s)],
                                cwd=tmp, env=_env(tmp), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        fd, buf = proc.stdout.fileno(), b""
        try:
            line, buf = _read_line(fd, buf, time.monotonic() + STARTUP_S)
            if not line or json.loads(line) != {"ready": True}:
                _kill(proc)
                err = proc.stderr.read().decode(errors="replace").strip()[-2000:]
                raise SandboxError(f"the sandbox worker did not start (exit code {proc.returncode}): {err}")
            while len(verdicts) < len(checks):
                line, buf = _read_line(fd, buf, time.monotonic() + timeout_s)
                if line is None:
                    _kill(proc)
                    verdicts.append(Verdict(False, f"timeout: no answer within {timeout_s:g} s"))
                    break
                if line == b"":
                    verdicts.append(Verdict(False, _exit_reason(proc.wait())))
                    break
                try:
                    row = json.loads(line)
                    assert row["i"] == len(verdicts) and isinstance(row["ok"], bool)
                except (ValueError, KeyError, TypeError, AssertionError):
                    _kill(proc)
                    verdicts.append(Verdict(False, "crashed: the worker wrote something that is not a result"))
                    break
                verdicts.append(Verdict(row["ok"], row["reason"]))
                if row["reason"] and row["reason"].startswith("refused:"):
                    break  # the worker stops after a refused action
        finally:
            if proc.poll() is None:
                _kill(proc)
            proc.stdout.close()
            proc.stderr.close()
    return verdicts


def run_checks(checks, allow=False, timeout_s=2.0, memory_mb=512, batch=64):
    """A Verdict per check, in order. Without allow=True nothing runs: a SandboxError says why."""
    if not allow:
        raise SandboxError(f"{len(checks)} check functions come from a data file and run only in the sandbox "
                           f"when asked: pass {RUN_FLAG}")
    verdicts = []
    for start in range(0, len(checks), batch):
        todo = checks[start:start + batch]
        while todo:
            done = _run_worker(todo, timeout_s, memory_mb)
            verdicts += done
            todo = todo[len(done):]
    return verdicts


def bench(n=200, batch=64):
    """Seconds for n trivial checks: batched workers vs one worker per check (same run)."""
    code = "def check_following(instruction, response):\n    return len(response.split()) > 2\n"
    checks = [Check(code, "say hi", f"hello there number {i}") for i in range(n)]
    t0 = time.perf_counter()
    batched = run_checks(checks, allow=True, batch=batch)
    t1 = time.perf_counter()
    single = run_checks(checks, allow=True, batch=1)
    t2 = time.perf_counter()
    assert batched == single and all(v.ok for v in batched)
    return {"checks": n, "batch": batch, "batched_s": round(t1 - t0, 3), "one_per_check_s": round(t2 - t1, 3),
            "speedup": round((t2 - t1) / (t1 - t0), 1)}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minirlvr.reward.sandbox", description="Time the dataset-code sandbox.")
    p.add_argument("--bench", action="store_true", help="time batched workers against one worker per check")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args(argv)
    if not args.bench:
        p.print_help()
        return
    print(json.dumps(bench(args.n, args.batch)))


if __name__ == "__main__":
    main()
