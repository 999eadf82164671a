"""Evaluation on the paper's benchmarks.

Files: multiif.py (Multi-IF: reading the benchmark, running its three turns, per-turn verdicts and the metrics),
multiif_text.py (Multi-IF's word and sentence counts by detected language).
"""
