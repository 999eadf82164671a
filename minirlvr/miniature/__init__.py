"""The miniature: the paper's experiment on a CPU in minutes, as one preset of the pipeline (python run.py).

world.py      a synthetic instruction world: prompts, hard constraints (the verifier set), soft ones with a hidden
              truth, a response grammar
sft.py        the start policy: a ~1M-parameter Qwen2 trained from scratch on the world, cached
judge.py      a bag-of-tokens classifier for soft constraints: the critic's soft check, the judges' baseline
lm_judge.py   the LM judge: a small Qwen2 taught from the world's truth to answer the LLM judge's two templates
parts.py      the parts the pipeline plugs in (start, data, judge, critic, reward, evaluation, table)
"""
