"""The paper's experiment as one pipeline: data -> refine -> train every arm x seed -> evaluate -> report.

  parts.py      the parts protocol: what a pipeline needs from a world (data, judge, critic, evaluation, report)
  reproduce.py  reproduce(parts, ...): the stages in order, resumable, one folder per run
  hf_parts.py   the real-model parts: any Hugging Face chat model, 4-bit + LoRA
  presets.py    the presets: which parts, which model, which budget, readable as a table
  plan.py       a preset's GPU memory by arithmetic, and what fits a card
  report.py     the tables and plots every report shares
"""
