"""Evaluation: benchmarks scored by the verifiers or a judge, the judge's own audit, and the attention analysis.

  verify.py          score a response file against benchmark records (IFEval metrics: prompt/instruction, strict/loose)
  generate.py        generate a model's responses to IFEval / IFBench prompts, resumable, and score them
  benchmarks.py      the benchmark interface (read, conversations, score) and Multi-IF, CFBench, FollowBench in it
  conversations.py   generate turn by turn (the model's own earlier responses in the chat), resumable, and score
  judge_audit.py     how often an LLM judge misses a violated constraint, point-wise vs batched
  attention.py       how much response tokens attend to the constraint text (the paper's attention analysis; also
                     the pipeline's attention stage: stage_record, stage_scores)
  attention_hook.py  per-segment attention mass collected while a Hugging Face decoder runs its SDPA attention
  multiif.py         Multi-IF: the reader, three turns on the model's own responses, per-turn verdicts, metrics
  multiif_text.py    Multi-IF's language-aware word and sentence counts (Chinese, Japanese, Hindi, Thai, ...)
  cfbench.py         CFBench: the official batched judge prompt, its parsers (and the fallback's bug), CSR/ISR/PSR;
                     a point-wise variant through the kit's judge interface
  followbench.py     FollowBench: the official judge prompt per category and its parser, HSR/SSR per level, CSL
  followbench_rules.py  FollowBench's rule-checked sources and formats, level by level
"""
