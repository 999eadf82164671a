"""`python run.py verify --data PROMPTS.jsonl --responses RESPONSES.jsonl [--out report.json]`

Scores a response file (one {"prompt", "response"} per line) against IFEval-format records with the hard-constraint
verifiers and prints IFEval's four metrics and a per-instruction-id table (evaluation/verify.py). VerInstruct data
(records carrying Python rule checks) is scored with its checks in the sandbox, only with --run-dataset-code.
"""

import argparse
import sys

from minirlvr.cli import HelpFormatter
from minirlvr.data import DataError


def verify_rules_main(args):
    from minirlvr.evaluation.verify import format_rule_report, run_rules
    from minirlvr.reward.sandbox import SandboxError

    try:
        report = run_rules(args.data, args.responses, args.out, args.run_dataset_code)
    except (DataError, SandboxError, OSError) as e:
        sys.exit(f"verify: error: {e}")
    print(format_rule_report(report))
    if args.out:
        print(f"\nreport written to {args.out}")
    return report


def main(argv=None):
    p = argparse.ArgumentParser(formatter_class=HelpFormatter, prog="python run.py verify", description=__doc__.split("\n\n")[1].split("(evaluation")[0].strip())
    p.add_argument("--data", required=True, help="IFEval-format records (JSONL): IFEval, IFBench or any record file")
    p.add_argument("--responses", required=True, help="JSONL with 'prompt' and 'response' per line")
    p.add_argument("--out", help="write the full report (metrics, table, per-prompt verdicts) as JSON")
    p.add_argument("--run-dataset-code", action="store_true",
                   help="VerInstruct data: run its rule checks (Python from the data file) in the sandbox")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    # the scorers (the reward package loads torch) are imported once the arguments are read: --help stays instant
    from minirlvr.evaluation.verify import format_report, is_rule_data, run

    if is_rule_data(args.data):
        return verify_rules_main(args)
    try:
        report = run(args.data, args.responses, args.out)
    except (DataError, OSError) as e:
        sys.exit(f"verify: error: {e}")
    print(format_report(report))
    if "words:start_verb" in report["per_instruction"]:
        from minirlvr.verifiers import pos_tagger

        print(f"\nwords:start_verb tagged with {pos_tagger.describe()}")
    if args.out:
        print(f"\nreport written to {args.out}")
    return report


if __name__ == "__main__":
    main()
