"""`minirlvr bench <target> [options]`: the same as `python -m minirlvr.bench <target>` (minirlvr/bench/__main__.py)."""

from minirlvr.bench import __main__ as targets


def main(argv=None):
    return targets.main(argv)
