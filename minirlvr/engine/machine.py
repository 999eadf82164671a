"""How fast is this machine? One number a run prints so that wall times measured on different machines can be
compared: fp32 matrix-multiply throughput on one thread (GFLOP/s), plus the core count.

    speed = machine_speed()        # {"cores": 2, "gflops_1_thread": 41.3, ...}

Machines of one kind differ by up to 3x per core (a busy neighbour, another CPU generation); a miniature run's
wall time scales with this number roughly inversely. This file does not time training or decide anything.
"""

import os
import time


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
