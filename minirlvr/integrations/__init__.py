"""The kit's records and rewards in other trainers. Plain Python: neither file imports TRL or verl, and nothing else
in minirlvr imports this package.

  trl.py     TRL's GRPOTrainer: reward functions and dataset rows
  verl.py    verl: the custom reward function (compute_score) and parquet rows
  common.py  what both share: the kit's record rebuilt from a trainer's row, checked, scored
"""
