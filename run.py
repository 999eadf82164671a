"""minirlvr's command line.

    python run.py                 the embedded experiment (hard vs soft vs mixed vs refined rewards), CPU
    python run.py --quick         a reduced version of it
    python run.py verify ...      score a response file with the hard-constraint verifiers (IFEval metrics)
    python run.py attention ...   how much response tokens attend to the constraint text
"""

import importlib
import sys

SUBCOMMANDS = {
    "verify": "minirlvr.verify_cli",
    "attention": "minirlvr.attention_report",
    "train": "minirlvr.train",
}
DEFAULT = "minirlvr.experiment"


def main(argv):
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
