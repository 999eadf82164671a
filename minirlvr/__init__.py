"""minirlvr: GRPO with verifiable rewards for instruction following, small enough to read in one sitting.

Reproduces "Precision over Diversity: High-Precision Reward Generalizes to Robust Instruction Following"
(arXiv 2601.04954). See README.md for the file map.
"""

__version__ = "0.1.0"
