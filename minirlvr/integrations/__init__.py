"""The kit's records and rewards in other trainers: trl.py (TRL's GRPOTrainer reward function and dataset rows),
verl.py (verl's custom reward function and parquet rows). Plain Python: neither imports TRL or verl, and nothing
else in minirlvr imports this package.
"""
