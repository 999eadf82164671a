"""bench/measure.py's CPU tensor meter (TensorPeak): the peak of live tensor bytes, by hand-counted allocations."""

import torch

from minirlvr.bench.measure import TensorPeak

MiB = 2 ** 20


def test_tensor_peak_follows_live_tensors():
    before = torch.empty(4 * MiB, dtype=torch.uint8)  # allocated before the meter: its free is not counted
    meter = TensorPeak()
    a = torch.empty(3 * MiB, dtype=torch.uint8)
    b = torch.empty(MiB // 4, dtype=torch.float32)  # 1 MiB
    del a  # 1 MiB live
    c = torch.empty(2 * MiB, dtype=torch.uint8)  # 3 MiB live: below the 4 MiB peak
    del before, b, c
    d = torch.empty(5 * MiB // 8, dtype=torch.float64)  # 5 MiB: a later, higher peak
    del d
    assert meter.peak() == 5 * MiB
    assert meter.peak() == 5 * MiB  # stopped once; asking again gives the same figure


def test_tensor_peak_counts_a_temporary_inside_an_op():
    x = torch.ones(MiB // 4)  # 1 MiB, before the meter
    meter = TensorPeak()
    y = (x * 2).sum()  # the product (1 MiB) lives until sum() returns; beside it only scalars (the result...)
    assert MiB <= meter.peak() < MiB + 64 and y.item() == 2 * (MiB // 4)
