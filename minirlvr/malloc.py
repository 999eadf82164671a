"""glibc's allocator and the CPU resident set: make freed tensors leave the process.

torch's CPU tensors come from glibc malloc. glibc serves blocks below its mmap threshold from its heap and keeps
freed heap pages resident; the threshold starts at 128 KiB and rises (up to 32 MiB) after each large free. A
training step allocates and frees hundreds of MB of activations of varying sizes, so the heap fragments and the
resident set grows well above the live tensors (the step benchmark at the `small` shape: peak 1.70 GB with glibc's
default, 1.10 GB with the threshold pinned at 1 MiB). Pinning the threshold maps every larger block on allocation
and unmaps it on free; the price is a page fault per fresh page of those blocks.
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
