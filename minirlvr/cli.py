"""`minirlvr <command> [options]` (or `python run.py ...` in a checkout): one entry point for the kit's commands.

Each command is a module with `main(argv)`; this file only picks the module from COMMANDS, the one table that the
help text is made from too. Without a command (`minirlvr`, `minirlvr --quick`, `minirlvr --preset NAME ...`) the
arguments go to `reproduce`. It imports a command's module only when that command runs: `--help` here is instant.
"""

import argparse
import difflib
import importlib
import os
import sys

class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every command's help: descriptions as written (line breaks kept), and each option's default where it has one
    (not None, not a switch's False) and its help does not already say it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text or not text:
            return text
        return f"{text} (default: {action.default})"


# name: (module with main(argv), one-line description)
COMMANDS = {
    "reproduce": ("minirlvr.commands.reproduce", "the paper's whole pipeline on a preset (the default: the miniature, CPU)"),
    "plan": ("minirlvr.commands.plan", "a preset's GPU memory, estimated from the model's config.json, and what fits a card"),
    "data": ("minirlvr.commands.data", "training data: `data build` from seed tasks, `data convert` from dataset files"),
    "refine": ("minirlvr.commands.refine", "critic, one soft constraint per prompt, learnability pilot"),
    "train": ("minirlvr.commands.train", "GRPO on one model and one data file, configured by --key=value"),
    "eval": ("minirlvr.commands.eval", "generate with a model (+ adapter) on IFEval / IFBench prompts and score them"),
    "verify": ("minirlvr.commands.verify", "score a response file with the hard-constraint verifiers (IFEval metrics)"),
    "judge-audit": ("minirlvr.commands.judge_audit", "how often an LLM judge misses violated (hard) constraints, pointwise "
                                            "vs batched"),
    "attention": ("minirlvr.commands.attention", "how much response tokens attend to the constraint text"),
    "bench": ("minirlvr.commands.bench", "benchmarks with their baseline measured in the same run (bench --help: targets)"),
}
DEFAULT = "reproduce"


def usage():
    width = max(map(len, COMMANDS))
    lines = ["usage: minirlvr <command> [options]      (in a checkout: python run.py <command> [options])",
             "       minirlvr [--quick | --smoke | reproduce options]      the same as: minirlvr reproduce ...", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "minirlvr <command> --help shows a command's options."]
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help"):
        try:
            print(usage(), flush=True)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    if argv and argv[0] in COMMANDS:
        name, argv = argv[0], argv[1:]
    elif argv and not argv[0].startswith("-"):
        close = difflib.get_close_matches(argv[0], COMMANDS, n=1)
        sys.exit(f"error: unknown command {argv[0]!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                 + f"\n\n{usage()}")
    else:
        name = DEFAULT
    # A command's main may return a value (a benchmark's rows): not an exit status for the console script.
    try:
        importlib.import_module(COMMANDS[name][0]).main(argv)
    except BrokenPipeError:
        # the reader of our output went away (`minirlvr --help | head -1`): stop quietly, as other tools do; stdout
        # goes to /dev/null so that Python's flush at exit does not fail a second time (Python docs, "signal")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
