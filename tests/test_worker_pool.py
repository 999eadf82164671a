"""engine/machine.worker_pool: the processes the miniature trains its runs and its LM judge in. They must not
outlive a parent that is killed (Ctrl-C reaches them anyway; `kill PID` would otherwise leave them training on)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from minirlvr.engine.machine import worker_pool

PARENT = textwrap.dedent("""
    import os, sys, time
    from minirlvr.engine.machine import worker_pool

    if __name__ == "__main__":
        pool = worker_pool(1)
        print(pool.submit(os.getpid).result(), flush=True)  # the worker's pid
        pool.submit(time.sleep, 600)  # keeps the worker busy: it would never read the pool's queue again
        time.sleep(600)
""")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its new parent) counts as gone
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_workers_exit_when_their_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    assert alive(worker)
    os.kill(parent.pid, signal.SIGKILL)  # no cleanup of any kind in the parent
    parent.wait()
    deadline = time.time() + 60  # the worker looks once a second; 60 s is slack for a loaded machine, not a timing
    while alive(worker) and time.time() < deadline:
        time.sleep(0.2)
    assert not alive(worker)


def test_a_pool_runs_its_initializer_in_each_worker(tmp_path):
    with worker_pool(2, os.chdir, (str(tmp_path),)) as pool:
        assert pool.submit(os.getcwd).result() == str(tmp_path) != os.getcwd()
        assert pool.submit(os.getpid).result() != os.getpid()
