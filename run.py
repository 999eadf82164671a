"""`python run.py [command] [options]`: the `minirlvr` command (minirlvr/cli.py) for a checkout.

    python run.py --help          the commands, one line each
    python run.py                 the embedded experiment (hard vs soft vs mixed vs refined rewards), CPU
    python run.py --quick         a reduced version of it
    python run.py train --help    a command's options
"""

import importlib.util
import os
import sys

# Python puts this script's folder first on sys.path. Here that folder holds kernels/, which would then import
# as a top-level `kernels` and shadow Hugging Face's package of that name (bitsandbytes and transformers import
# it). minirlvr is installed (`pip install -e .`), so the folder is not needed on the path.
_ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _ROOT]

if __name__ == "__main__":
    if importlib.util.find_spec("minirlvr") is None:
        sys.exit("minirlvr is not installed in this Python: run `pip install -e .` in this folder first "
                 "(see README.md)")
    from minirlvr.cli import main

    main(sys.argv[1:])
