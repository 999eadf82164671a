"""The paper's data refinement: drop what cannot be learned or cannot be judged well before training on it.

  filters.py  the three filters as pure functions: critic verdicts, one soft constraint per prompt, learnability
  critic.py   the LLM critic (the verifiers' conflict table first, then a local chat model)
  stages.py   refine(): the filters in order over a data file, resumable, with a real model's sampler and reward
"""
