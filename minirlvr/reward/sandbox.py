"""Run check functions that come from a data file (VerInstruct's rule checkers) in kernel-confined subprocesses.

    verdicts = run_checks([Check(code, instruction, response), ...], allow=args.run_dataset_code)
    verdicts[k].ok, verdicts[k].reason     # reason is None when the check ran cleanly and returned a bool

Dataset code never runs in this process, and never without `allow=True` (the CLI flag --run-dataset-code):
without it, run_checks raises before anything is started. With it, checks go in batches to a fresh
`python -I -B sandbox_worker.py` per batch, which confines itself with what the kernel enforces (namespaces,
a size-capped tmpfs root holding only the interpreter's files, uid nobody with no capabilities, Landlock:
sandbox_worker.py says exactly what) and then forks one child per check, handing it only its own job. A
machine that cannot confine (no user namespaces, no Landlock) gets a SandboxError naming the step that failed;
MINIRLVR_UNCONFINED_DATASET_CODE=yes (or unconfined=True) runs the checks without the kernel confinement,
loudly, for machines that cannot.

Each check has `timeout_s` seconds (the worker kills it then; this process waits a few seconds more before it
kills the worker). A check that times out, crashes, raises, runs out of memory or returns anything but a bool
is a failed check with its reason; the batch goes on. This process survives whatever the worker writes or does:
result lines are length-capped and validated field by field, every wait has a deadline, the worker's process
group is killed in `finally`, cleanup errors are ignored, and reasons are one printable line of at most 300
characters. A worker that stops answering or writes nonsense costs the check it was on; a fresh one takes the
rest. Only a worker that cannot start at all (a broken Python, no confinement) is an error.

Batches run on up to 4 workers at once (one per CPU). on_verdict(k, verdict) is called as each verdict
arrives, so a caller can record them as they come (resume).
`python -m minirlvr.bench sandbox` times 1,000 checks confined against the pre-confinement design.
This file does not know what a check means or how records hold them (rule_checks.py).
"""

import json
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources

RUN_FLAG = "--run-dataset-code"
UNCONFINED_ENV = "MINIRLVR_UNCONFINED_DATASET_CODE"
WORKER = str(resources.files("minirlvr.reward") / "sandbox_worker.py")  # run by path: the worker never imports minirlvr
STARTUP_S = 60.0  # a loaded machine can take seconds to start Python; no dataset code runs before "ready"
GRACE_S = 10.0  # past a check's timeout, how long the worker has to report it before it is killed
MAX_LINE = 16384  # bytes of one result line from the worker; the worker's own are < 1 KB
MAX_REASON = 300


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


def clean_reason(text):
    """One printable line of at most MAX_REASON characters: reasons go into reports and onto the console."""
    text = "".join(c if c.isprintable() else " " for c in str(text)[:4 * MAX_REASON])
    return text[:MAX_REASON]


def parse_result(line, i):
    """The Verdict in a worker's result line for check i, or None when the line is anything else."""
    if len(line) > MAX_LINE:
        return None
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if (not isinstance(row, dict) or set(row) != {"i", "ok", "reason"} or type(row["i"]) is not int
            or row["i"] != i or type(row["ok"]) is not bool
            or not (row["reason"] is None or isinstance(row["reason"], str))):
        return None
    return Verdict(row["ok"], None if row["reason"] is None else clean_reason(row["reason"]))


class _Worker:
    """One worker process: start it, feed it jobs, read its answers, kill it. Every wait has a deadline.
    Jobs are written ahead while answers are awaited (as far as the pipe takes them): the worker reads one at a
    time, and a check has no descriptor of that pipe, so jobs waiting in it are out of its reach."""

    def __init__(self, tmp, checks, timeout_s, memory_mb, disk_mb, unconfined):
        argv = [sys.executable, "-I", "-B", WORKER, tmp, str(memory_mb), str(disk_mb), repr(float(timeout_s))]
        self.proc = subprocess.Popen(argv + (["--unconfined"] if unconfined else []), cwd=tmp,
                                     env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"},
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.out, self.inp, self.buf = self.proc.stdout.fileno(), self.proc.stdin.fileno(), b""
        os.set_blocking(self.inp, False)
        self.jobs, self.pending, self.feeding = iter(checks), b"", False

    def _feed(self):
        """Write what the pipe takes of the next jobs; stop feeding for good when the worker has gone."""
        while True:
            if not self.pending:
                check = next(self.jobs, None)
                if check is None:
                    self.feeding = False
                    return
                payload = json.dumps([check.code, check.instruction, check.response]).encode("utf-8")
                self.pending = memoryview(struct.pack(">Q", len(payload)) + payload)
            try:
                self.pending = self.pending[os.write(self.inp, self.pending):]
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # a broken pipe: the worker is gone, reading tells how
                self.feeding, self.pending = False, b""
                return

    def read_line(self, deadline):
        """A line (bytes), None on timeout, b"" at end of file, or b"x" * (MAX_LINE + 1) when it is too long."""
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_LINE:
                return b"x" * (MAX_LINE + 1)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            readable, writable, _ = select.select([self.out], [self.inp] if self.feeding else [], [], left)
            if writable:
                self._feed()
            if readable:
                chunk = os.read(self.out, 1 << 16)
                if not chunk:
                    return b""
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def start_feeding(self):
        self.feeding = True

    def error(self):
        self.kill()
        try:
            return self.proc.stderr.read(1 << 16).decode(errors="replace").strip()[-2000:]
        except (OSError, ValueError):
            return ""

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=STARTUP_S)
        except subprocess.TimeoutExpired:
            pass

    def close(self):
        self.kill()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


def _exit_reason(proc):
    try:
        rc = proc.wait(timeout=1.0)  # its output has ended: it is exiting, or has closed stdout and goes on
    except subprocess.TimeoutExpired:
        return "crashed: the worker closed its output"
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:  # a real-time signal has no name
            name = f"signal {-rc}"
        return f"crashed: the worker was killed by {name}"
    return f"crashed: the worker exited with code {rc}"


def _run_worker(checks, timeout_s, memory_mb, disk_mb, unconfined, on_verdict, stop):
    """Verdicts for a prefix of `checks` (at least one unless `stop` is set): one worker, stopped when it stops
    answering properly or when `stop` (a threading.Event) is set."""
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="minirlvr-sandbox-", ignore_cleanup_errors=True) as tmp:
        worker = _Worker(tmp, checks, timeout_s, memory_mb, disk_mb, unconfined)
        try:
            line = worker.read_line(time.monotonic() + STARTUP_S)
            if line != b'{"ready": true}':
                err = worker.error()
                raise SandboxError(f"the sandbox worker did not start (exit code {worker.proc.returncode}): {err}"
                                   + (f"\nTo run dataset code without the kernel confinement on this machine "
                                      f"anyway, set {UNCONFINED_ENV}=yes." if "cannot confine" in err else ""))
            worker.start_feeding()
            for i in range(len(checks)):
                if stop.is_set():
                    break
                line = worker.read_line(time.monotonic() + timeout_s + GRACE_S)  # the worker runs one at a time
                verdict = parse_result(line, i) if line else None
                failed = (f"timeout: the worker did not answer within {timeout_s + GRACE_S:g} s" if line is None
                          else _exit_reason(worker.proc) if line == b""
                          else "crashed: the worker wrote something that is not a result")
                verdicts.append(verdict or Verdict(False, failed))
                if on_verdict:
                    on_verdict(len(verdicts) - 1, verdicts[-1])
                if verdict is None or verdict.reason and verdict.reason.startswith("refused:"):
                    break  # this worker is gone or no longer trusted to answer: a fresh one takes the rest
        finally:
            worker.close()
    return verdicts


def run_checks(checks, allow=False, timeout_s=2.0, memory_mb=512, batch=64, disk_mb=64, unconfined=None,
               on_verdict=None, workers=None):
    """A Verdict per check, in order. Without allow=True nothing runs: a SandboxError says why.
    on_verdict(k, verdict), when given, is called as soon as check k's verdict is known (one call at a time).
    Batches run on up to `workers` workers at once (default: the CPU count, at most 4)."""
    if not allow:
        raise SandboxError(f"{len(checks)} check functions come from a data file and run only in the sandbox "
                           f"when asked: pass {RUN_FLAG}")
    if unconfined is None:
        unconfined = os.environ.get(UNCONFINED_ENV) == "yes"
    if unconfined and checks:
        print(f"WARNING: {UNCONFINED_ENV}: {len(checks)} dataset check functions run WITHOUT kernel confinement "
              "(they can read, write and reach whatever this user can)", file=sys.stderr)
    verdicts, lock, stop = [None] * len(checks), threading.Lock(), threading.Event()

    def deliver(k, verdict):
        with lock:
            verdicts[k] = verdict
            if on_verdict:
                on_verdict(k, verdict)

    def run_batch(start):
        todo = checks[start:start + batch]
        while todo and not stop.is_set():
            done = _run_worker(todo, timeout_s, memory_mb, disk_mb, unconfined,
                               lambda k, v, base=start: deliver(base + k, v), stop)
            if not done:
                break  # only when stopped
            start, todo = start + len(done), todo[len(done):]

    starts = range(0, len(checks), batch)
    workers = max(1, min(workers or min(4, os.cpu_count() or 1), len(starts)))
    with ThreadPoolExecutor(workers) as pool:
        try:
            for future in [pool.submit(run_batch, start) for start in starts]:
                future.result()
        except BaseException:
            stop.set()  # the other workers finish the check they are on, then stop
            pool.shutdown(cancel_futures=True)
            raise
    return verdicts
