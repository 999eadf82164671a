"""Evaluation: scoring model responses on the paper's benchmarks (cfbench.py: CFBench; followbench.py and
followbench_rules.py: FollowBench)."""
