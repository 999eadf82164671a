"""Benchmarks: `python -m minirlvr.bench <target>` (see __main__.py for the targets). Each target measures the kit
against a baseline in the same run and reports ratios; measure.py holds what they share."""
