"""`python run.py refine --data FILE --model M --out FILE`: the paper's data refinement for real models, in order:

1. critic: the verifiers' conflict table, then an LLM critic (refine/critic.py) on every prompt: the policy's own base
   with its adapter off, or --critic-model;
2. at most one soft constraint per prompt (refine/filters.one_soft, the others cut from the prompt text);
3. learnability pilot: --pilot-samples samples per prompt from the starting policy (the kit's sampler, the
   training temperature), scored with the training reward; --keep says which pass rates stay (see --help).

It prints and writes how many prompts each stage dropped and why (refine_report.json next to --out: per-stage
counts and one reason per dropped record) and writes the kept records to --out (atomically, at the end only).
Resumable: each model stage appends its finished prompts, a chunk at a time, to JSONL files in a work folder
(--work, default OUT.work/); a rerun with the same inputs and settings skips them. The work folder records a
hash of the data and the settings, and refuses to resume a different job.

The Python API is `refine(records, critic_ask, sample, reward_fn, work)` (refine/stages.py); models and the reward
are built only in main(). This file does not train.
"""

import argparse
import hashlib
import os
import sys

from minirlvr.cli import HelpFormatter
from minirlvr.data import DataError, to_json, write_atomic, write_jsonl
from minirlvr.engine.machine import THREADS_HELP, cpu_threads
from minirlvr.refine.filters import KEEP

# reward/sandbox.RUN_FLAG, written out: importing the reward package loads torch, and --help loads no model code
RUN_FLAG = "--run-dataset-code"


def _load(path, what, **kwargs):
    from minirlvr.engine.model import ModelError, load_for_inference
    from minirlvr.refine.stages import RefineError

    try:
        return load_for_inference(path, **kwargs)
    except (ModelError, OSError, ValueError) as e:
        raise RefineError(f"{what} {path!r} cannot be loaded: {e}") from None


def build_parser():
    p = argparse.ArgumentParser(prog="python run.py refine", description="\n\n".join(__doc__.split("\n\n")[:3]).split(": ", 1)[1],
                                formatter_class=HelpFormatter)
    p.add_argument("--data", required=True, help="records (JSONL, the kit's format; convert raw datasets first)")
    p.add_argument("--model", required=True, help="the starting policy: a model folder or hub id")
    p.add_argument("--adapter", help="a peft LoRA adapter folder on --model (the policy to start from)")
    p.add_argument("--4bit", dest="load_in_4bit", action="store_true", help="load --model in 4-bit NF4")
    p.add_argument("--load-in-4bit", dest="load_in_4bit", action="store_true", help=argparse.SUPPRESS)  # the old spelling
    p.add_argument("--critic-model", help="the critic: a chat model folder or hub id (default: --model's base, "
                                          "adapter off)")
    p.add_argument("--critic-4bit", action="store_true", help="load --critic-model in 4-bit NF4")
    p.add_argument("--critic-tokens", type=int, default=64, help="max new tokens of a critic answer (greedy)")
    p.add_argument("--critic-unparsed", choices=["keep", "drop"], default="keep",
                   help="what happens to a prompt whose critic answer has no verdict (counted either way)")
    p.add_argument("--judge-model", default="base",
                   help="the LLM judge for soft constraints in the pilot reward (default: the starting policy)")
    p.add_argument("--judge-mode", choices=["pointwise", "batched"], default="pointwise",
                   help="one constraint per judge call, or all of a record's in one")
    p.add_argument("--out", required=True, help="the refined records (JSONL, written at the end)")
    p.add_argument("--report", help="the report (default: refine_report.json next to --out)")
    p.add_argument("--work", help="progress files for resuming (default: OUT.work/)")
    p.add_argument("--pilot-samples", type=int, default=8, help="G samples per prompt in the pilot (0: no pilot)")
    p.add_argument("--keep", choices=list(KEEP), default="mixed-only",
                   help="which pilot pass rates stay; a sample passes when its reward is 1 (every constraint "
                        "satisfied), a prompt's pass rate is the fraction of its G samples that pass. mixed-only: "
                        "pass rate strictly between 0 and 1 (some samples pass, some fail: GRPO gets a non-zero "
                        "advantage). all-fail: also keep prompts no sample passed (pass rate 0). Prompts every "
                        "sample passed are dropped either way (nothing to learn).")
    p.add_argument("--max-new-tokens", type=int, default=256, help="pilot completion length")
    p.add_argument("--temperature", type=float, default=1.0, help="pilot sampling temperature (the training one)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--batch-rows", type=int, default=64, help="rows (prompts x samples) decoded together")
    p.add_argument("--chunk", type=int, default=16, help="prompts per progress write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument(RUN_FLAG, dest="run_dataset_code", action="store_true",
                   help="run the records' dataset rule checks (VerInstruct) in the sandbox during the pilot")
    p.add_argument("--threads", type=int, help=THREADS_HELP)
    return p


def format_report(report):
    lines = []
    for s in report["stages"]:
        why = ", ".join(f"{n} {k}" for k, n in s["dropped"].items()) or "none"
        extra = {"critic": f"; {s.get('unparsed_kept', 0)} unparsed answers kept",
                 "one_soft": f"; {s.get('trimmed', 0)} prompts trimmed to one soft constraint",
                 "pilot": " (skipped)" if s.get("skipped") else f"; mean pass rate {s.get('mean_pass_rate')}"}
        lines.append(f"  {s['stage']:<9} {s['in']:>6} -> {s['out']:<6} dropped: {why}{extra[s['stage']]}")
    return "\n".join(lines)


def main(argv=None):
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    # the model code is imported once the arguments are read: --help stays instant
    from minirlvr.refine.critic import model_ask
    from minirlvr.refine.stages import RefineError, open_work, pilot_reward, policy_sampler, read_data, refine
    from minirlvr.reward.sandbox import SandboxError

    cpu_threads(args.threads)
    report_path = args.report or os.path.join(os.path.dirname(os.path.abspath(args.out)), "refine_report.json")
    work = args.work or args.out + ".work"
    try:
        if args.pilot_samples < 0 or args.chunk < 1:
            raise RefineError("--pilot-samples must be >= 0 and --chunk >= 1")
        records = read_data(args.data)
        model, tokenizer = _load(args.model, "--model", adapter=args.adapter, load_in_4bit=args.load_in_4bit,
                                 device=args.device)
        if args.critic_model:
            c_model, c_tok = _load(args.critic_model, "--critic-model", load_in_4bit=args.critic_4bit,
                                   device=args.device)
            ask = model_ask(c_model, c_tok, max_new_tokens=args.critic_tokens, batch_rows=args.batch_rows)
        else:
            ask = model_ask(model, tokenizer, adapter_off=True, max_new_tokens=args.critic_tokens,
                            batch_rows=args.batch_rows)
        reward_fn = pilot_reward(records, args, model, tokenizer) if args.pilot_samples else None
        with open(args.data, "rb") as f:
            data_hash = hashlib.sha256(f.read()).hexdigest()
        settings = {k: getattr(args, k) for k in ("model", "adapter", "load_in_4bit", "critic_model", "critic_4bit",
                                                  "critic_tokens", "critic_unparsed", "judge_model", "judge_mode", "pilot_samples",
                                                  "max_new_tokens", "temperature", "top_p", "chunk", "seed")}
        open_work(work, data_hash, settings)
        sample = policy_sampler(model, tokenizer, args.max_new_tokens, args.temperature, args.top_p, args.batch_rows)
        kept, report = refine(records, ask, sample, reward_fn, work, args.pilot_samples, args.keep, args.seed,
                              args.chunk, args.critic_unparsed)
    except (DataError, RefineError, SandboxError) as e:
        sys.exit(f"refine: error: {e}")
    except KeyboardInterrupt:
        sys.exit(f"\ninterrupted: finished stages are in {work}; the same command resumes from there")
    report = {"data": args.data, "out": args.out, "work": work, "settings": dict(settings, keep=args.keep), **report}
    write_jsonl(args.out, kept)
    write_atomic(report_path, to_json(report, indent=1, ensure_ascii=False) + "\n")
    print(f"refine: {len(records)} prompts -> {len(kept)} kept\n{format_report(report)}")
    print(f"records written to {args.out}, report to {report_path}")
    if not kept:
        print("WARNING: no prompt survived refinement", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
