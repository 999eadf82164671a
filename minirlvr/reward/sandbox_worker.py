"""The child side of sandbox.py, run as `python -I -B sandbox_worker.py JOBS TMP MEMORY_MB CPU_S`: it confines
itself, then runs each job's check_following(instruction, response) and writes one JSON line per job.

Order matters: it reads the jobs and opens its result stream first, then sets its rlimits (address space, CPU
seconds, file size, open files, processes, no core files; soft = hard, so the check cannot raise them), points
stdout and stderr at /dev/null (a print in a check cannot corrupt the results), and installs an audit hook (PEP 578) that
refuses sockets, subprocesses, os.system / exec / fork / kill, ctypes and rlimit changes, and any write,
rename or delete outside TMP. A refused event fails the check whatever it returns, with the event as the
reason, and this process then stops: the parent starts a fresh one for the remaining jobs.

It keeps its user: dropping root to nobody would also lose read access to a Python installed under /root
(pyenv), so imports would depend on the machine. Linux exempts root from the process limit; fork, exec and
spawn are refused by the audit hook either way. Audit hooks are not a security boundary against a determined
attacker (C extensions can bypass them); with the rlimits and a clean environment they contain the mistakes and the mischief a data
file's check function can hold. Standard library only: this file never imports minirlvr.
"""

import json
import os
import resource
import sys

REFUSED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
           "os.forkpty", "pty.", "os.kill", "os.killpg", "signal.pthread_kill", "ctypes.", "resource.setrlimit",
           "resource.prlimit", "os.putenv", "os.unsetenv", "sys.remote_exec", "webbrowser.open")
REFUSED_IMPORTS = {"ctypes", "_ctypes", "_posixsubprocess", "cffi", "_cffi_backend"}
PATH_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.truncate",
               "os.chmod", "os.chown", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.copymode",
               "shutil.copystat", "shutil.copytree", "shutil.move", "shutil.chown", "os.mkfifo", "os.mknod", "sqlite3.connect"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _inside(path, root):
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    real = os.path.realpath(os.fspath(path))
    return real == root or real.startswith(root + os.sep)


def audit_hook(tmp, violations):
    def hook(event, args):
        refused = None
        if event.startswith(REFUSED):
            refused = event
        elif event == "import" and args[0].split(".")[0] in REFUSED_IMPORTS:
            refused = f"import {args[0]}"
        elif event == "open":
            path, mode, flags = args
            writing = (isinstance(flags, int) and flags & WRITE_FLAGS) or (
                isinstance(mode, str) and any(c in mode for c in "wax+"))
            if writing and (isinstance(path, int) or not _inside(path, tmp)):
                refused = f"open {path!r} for writing outside the sandbox folder"
        elif event in PATH_EVENTS:
            paths = [a for a in args if isinstance(a, (str, bytes, os.PathLike))]
            if any(not _inside(p, tmp) for p in paths):
                refused = f"{event} outside the sandbox folder"
        if refused:
            violations.append(refused)
            raise PermissionError(f"sandbox: {refused} refused")
    return hook


def confine(memory_mb, cpu_s):
    mem = memory_mb * 1024 * 1024
    for limit, value in ((resource.RLIMIT_AS, mem), (resource.RLIMIT_CPU, cpu_s),
                         (resource.RLIMIT_FSIZE, 16 * 1024 * 1024), (resource.RLIMIT_NOFILE, 64),
                         (resource.RLIMIT_NPROC, 0), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(limit, (value, value))
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)


def run_one(job, violations):
    """(ok, reason) of one check; reason None when it ran cleanly."""
    try:
        scope = {"__name__": "dataset_check"}
        exec(compile(job["code"], "<dataset check>", "exec"), scope)
        fn = scope.get("check_following")
        if not callable(fn):
            return False, "the code defines no check_following function"
        result = fn(job["instruction"], job["response"])
        if type(result) is not bool:
            return False, f"returned {type(result).__name__}, not a bool"
        return result, None
    except BaseException as e:  # SystemExit, MemoryError, RecursionError, ...: all a failed check
        try:
            text = str(e)[:300]
        except BaseException:
            text = "?"
        return False, f"{type(e).__name__}: {text}" if text else type(e).__name__


def main():
    jobs_path, tmp, memory_mb, cpu_s = sys.argv[1], os.path.realpath(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    with open(jobs_path, encoding="utf-8") as f:
        jobs = [json.loads(line) for line in f]
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    confine(memory_mb, cpu_s)
    violations = []
    sys.addaudithook(audit_hook(tmp, violations))
    out.write('{"ready": true}\n')
    for i, job in enumerate(jobs):
        ok, reason = run_one(job, violations)
        if violations:
            ok, reason = False, f"refused: {violations[0]}"
        out.write(json.dumps({"i": i, "ok": ok, "reason": reason}) + "\n")
        if violations:
            break


if __name__ == "__main__":
    main()
