"""minirlvr's command line.

    python run.py                 the embedded experiment (hard vs soft vs mixed vs refined rewards), CPU
    python run.py --quick         a reduced version of it
    python run.py reproduce ...   the paper's whole pipeline on a preset (the same as the above on --preset miniature)
    python run.py verify ...      score a response file with the hard-constraint verifiers (IFEval metrics)
    python run.py eval ...        generate with a model (+ adapter) on IFEval/IFBench prompts and score the responses
    python run.py attention ...   how much response tokens attend to the constraint text
    python run.py judge-audit ... how often an LLM judge misses violated (hard) constraints, pointwise vs batched
    python run.py data build ...  training splits (hard-only / soft-only / mixed) and a held-out split from seed tasks
    python run.py data convert .. read IFEval / open-instruct RLVR / VerInstruct files into records
    python run.py refine ...      critic, one soft constraint per prompt, learnability pilot
    python run.py plan ...        a preset's GPU memory, estimated from the model's config.json, and what fits a card
"""

import importlib
import importlib.util
import os
import sys

# Python puts this script's folder first on sys.path. Here that folder holds kernels/, which would then import
# as a top-level `kernels` and shadow Hugging Face's package of that name (bitsandbytes and transformers import
# it). minirlvr is installed (`pip install -e .`), so the folder is not needed on the path.
_ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _ROOT]

SUBCOMMANDS = {
    "verify": "minirlvr.verify_cli",
    "attention": "minirlvr.attention_report",
    "train": "minirlvr.train",
    "eval": "minirlvr.eval_cli",
    "judge-audit": "minirlvr.judge_audit",
    "data": "minirlvr.data_cli",
    "refine": "minirlvr.refine_cli",
    "reproduce": "minirlvr.pipeline",
    "plan": "minirlvr.plan",
}
DEFAULT = "minirlvr.pipeline"


def main(argv):
    if importlib.util.find_spec("minirlvr") is None:
        sys.exit("minirlvr is not installed in this Python: run `pip install -e .` in this folder first (see README.md)")
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    if argv and argv[0] in SUBCOMMANDS:
        module, argv = SUBCOMMANDS[argv[0]], argv[1:]
    else:
        module = DEFAULT
    importlib.import_module(module).main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
