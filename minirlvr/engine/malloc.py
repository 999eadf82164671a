"""glibc's allocator and the CPU resident set: make freed tensors leave the process.

torch's CPU tensors come from glibc malloc. glibc serves blocks below its mmap threshold from its heap and keeps
freed heap pages resident; the threshold starts at 128 KiB and rises (up to 32 MiB) after each large free. A
training step allocates and frees hundreds of MB of activations of varying sizes, so the heap fragments and the
resident set grows well above the live tensors. Pinning the threshold maps every larger block on allocation and
unmaps it on free; the price is page faults on every fresh mapping. train() pins it at cpu_mmap_threshold_kb, 4 MiB
by default, chosen by measurement (`bench step --shape small`, 4-bit, one run each, peak RSS / seconds per step):
glibc's default 1.70 GB / 6.5 s, 8 MiB 1.72 GB / 6.8 s, 4 MiB 1.48 GB / 6.7-7.1 s, 2 MiB 1.06 GB / 9.3 s; fp32:
default 1.61 GB / 5.9 s, 4 MiB 1.44 GB / 6.2 s, 1 MiB 1.04 GB / 7.6 s. A memory-bound run can go lower
(--cpu_mmap_threshold_kb=1024) at that cost in time.
"""

import ctypes


def return_freed_memory(mmap_threshold=64 * 1024):
    """Make the CPU resident set follow live memory (Linux, glibc): pin glibc's mmap threshold (M_MMAP_THRESHOLD,
    -3) at 64 KiB (by default), so every larger block is mapped on allocation and unmapped on free (unpinned, glibc raises the
    threshold after the first large free and keeps later 16 MB tiles in its heap, resident after they are freed:
    a review saw the log-prob benchmark's CPU peak swing 54-162 MB between identical runs), then hand the heap's free
    pages back (malloc_trim), so that reusing them counts too. It stays for the rest of the process and slows
    allocation: call it after timing. A no-op where glibc is not the C library."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(-3, mmap_threshold)
    libc.malloc_trim(0)
