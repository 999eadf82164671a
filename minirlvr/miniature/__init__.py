"""The miniature: the paper's experiment on a CPU in minutes, as one preset of the pipeline (python run.py).

world.py      a synthetic instruction world: prompts, hard constraints (the verifier set), soft ones with a hidden
              truth, a response grammar
sft.py        the start policy: a ~1M-parameter Qwen2 trained from scratch on the world, cached
judge.py      the learned judge for soft constraints (a tiny classifier): its mistakes are its own
parts.py      the parts the pipeline plugs in (start, data, judge, critic, reward, evaluation, table)
"""
