"""minirlvr: GRPO with verifiable rewards for instruction following, small enough to read in one sitting.

Reproduces "Precision over Diversity: High-Precision Reward Generalizes to Robust Instruction Following"
(arXiv 2601.04954). Folders follow the paper's stages (README.md has the file map):

  engine/        model loading (4-bit + LoRA), tokenizer, sampler, chat, GRPO math, checkpoints
  verifiers/     hard-constraint verifiers (IFEval, IFBench, extras)
  reward/        constraint rewards, the judge interface and LLM judge, canaries, dataset rule checks, sandbox
  datasets/      training data: seed tasks -> splits, public dataset readers
  refine/        the paper's data refinement: critic, one soft constraint, learnability pilot
  evaluation/    benchmarks, judge audit, attention analysis
  pipeline/      the parts protocol, reproduce(), presets, plan, report helpers, the real-model parts
  miniature/     the CPU world as one set of parts
  integrations/  the kit's data and rewards in TRL and verl
  commands/      one file per `minirlvr <command>` (nothing imports them)
  bench/         `python -m minirlvr.bench <target>`

and three files every stage may use:

  data.py   the record format: read, validate, write (atomically)
  train.py  train(cfg, reward_fn, records): the GRPO loop
  cli.py    the command table: `minirlvr <command>` -> commands/<command>.py
"""

__version__ = "0.1.0"
