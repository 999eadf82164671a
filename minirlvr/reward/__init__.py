"""Rewards: hard constraints checked by the verifiers, soft ones by a judge, and the code that keeps both honest.

  constraint.py      the constraint rewards GRPO trains on (hard, soft, mixed) and the check every reward passes
  judge.py           the judge interface: one shape for every judge of soft constraints
  llm_judge.py       a local LLM judge, point-wise or batched, through the kit's sampler
  monitor.py         the live reward-hacking monitor (judged reward up while the judge's canary recall goes down)
  rule_checks.py     dataset rule checks (VerInstruct's Python checkers) as verdicts and as a reward, in the sandbox
  sandbox.py         runs dataset code in confined subprocesses
  sandbox_worker.py  the child side of sandbox.py (standard library only)

`from minirlvr.reward import constraint_reward` is the public path of the default reward.
"""

from minirlvr.reward.constraint import call_reward, constraint_reward, hard_checks, hard_reward, reward_from_config

__all__ = ["call_reward", "constraint_reward", "hard_checks", "hard_reward", "reward_from_config"]
