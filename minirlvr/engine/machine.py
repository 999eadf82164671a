"""This machine: how many torch threads to use on it (`cpu_threads`, every command's --threads), how fast it is
(`machine_speed`: one number a run prints so that wall times measured on different machines can be compared: fp32
matrix-multiply throughput on one thread, GFLOP/s, plus the core count), and a pool of worker processes for its
other cores (`worker_pool`: the miniature's runs and its LM judge train in them).

    speed = machine_speed()        # {"cores": 2, "gflops_1_thread": 41.3, ...}

Machines of one kind differ by up to 3x per core (a busy neighbour, another CPU generation); a miniature run's
wall time scales with this number roughly inversely. This file imports torch only inside its functions (the
commands' parsers read THREADS_HELP and --help stays instant); it does not time training.
"""

import os
import threading
import time

# Measured on the kit's 2-core CI machine while other jobs shared it (2026-12-06, `bench step --shape small`, 3
# GRPO steps, runs alternated 1, 2, 1, 2 threads): 15.0-17.1 s per step with 1 thread, 103.9-137.1 s with 2; an
# eval there took 17 s with 1 thread and 159 s with torch's default (issue #25). Torch's threads spin while they
# wait for a core that another process holds. Larger machines were not measured: they keep torch's default.
SMALL_MACHINE_CORES = 2
THREADS_HELP = (f"torch CPU threads (default: 1 on a machine of <= {SMALL_MACHINE_CORES} cores, where a GRPO step "
                f"measured 6-8x faster than with 2 under load; else torch's, one per core)")


def cores():
    """The cores this process may run on (its affinity where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_threads(n=None):
    """Set torch's CPU threads for this process: n, or (n 0 or None) the kit's default for this machine (1 thread
    on a machine of <= SMALL_MACHINE_CORES cores, torch's own elsewhere). Every command's --threads goes through
    here. Returns the threads now in use."""
    import torch

    n = n or (1 if cores() <= SMALL_MACHINE_CORES else 0)
    if n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def machine_speed(n=256, seconds=0.3):
    """Best-of-3 fp32 (n x n) @ (n x n) throughput on one torch thread, in GFLOP/s (the thread count is restored)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)  # (n, n)
        best = 0.0
        for _ in range(3):
            reps, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / 3:
                a @ b
                reps += 1
            best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9)
    finally:
        torch.set_num_threads(threads)
    return {"cores": os.cpu_count(), "gflops_1_thread": round(best, 1), "torch_threads": threads}


def describe(speed):
    return (f"machine: {speed['cores']} cores, {speed['gflops_1_thread']} GFLOP/s fp32 matmul on one thread "
            f"(compare wall times across machines by this number), {speed['torch_threads']} torch threads")


def worker_pool(n, initializer=None, initargs=()):
    """A concurrent.futures pool of n fresh Python processes (spawn: a forked child would inherit torch's thread
    pools and whatever the parent holds) whose workers exit when this process is gone. Ctrl-C reaches the whole
    process group anyway; a parent that is killed would otherwise leave its workers training on, unseen."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                               initargs=(os.getpid(), initializer, initargs))


def _start_worker(parent, initializer, initargs):
    def exit_with_parent():
        while os.getppid() == parent:  # an orphan is adopted by another process
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=exit_with_parent, daemon=True).start()
    if initializer is not None:
        initializer(*initargs)
