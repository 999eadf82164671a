"""The paper's whole experiment as one pipeline: start -> data -> refine -> train every arm x seed -> evaluate ->
attention -> report. `python run.py` (minirlvr/commands/reproduce.py) runs it on the preset `miniature`.

The stages are the same for every preset; what differs is plugged in as *parts* (pipeline/parts.py, the protocol
and its two implementations: minirlvr/miniature/parts.py, the synthetic world with its SFT start and learned judge;
pipeline/hf_parts.py, a Hugging Face model with data built from seed tasks or a dataset, the LLM judge and critic,
and IFEval / IFBench / a held-out split). `reproduce(parts, ...)` receives them; it never chooses them.

Every run trains through the engine (`train.train`) from the same start with the same budget. The attention stage
scores the start and each run's final policy right after its evaluation, while the policy is in memory: the parts
give held-out records with the policy's greedy responses (`attention_items`), evaluation/attention.stage_scores
measures them, report.attention_section writes the section; its random draws are isolated, so no other number
changes with it. Resume works at every level: `--resume` reads back what finished (start_eval.json,
start_attention.json, data/, runs/*/result.json with runs/*/attention.json beside it), continues an interrupted run
from its last checkpoint, and refuses when the settings differ from the first invocation's (naming the keys).
Outputs in --out: results.md (the table), results.json, metrics.jsonl (every step of every run), curves.png,
attention.png, config.json, log.txt, data/*.jsonl, start_attention.json (+ _records.jsonl: the scored records, for
`run.py attention --data`), runs/<run>/ (the engine's folder, with the trained adapter, attention.json and
attention_records.jsonl).
This file does not know what a world, a judge or a benchmark is; the parts do.
"""

import gc
import json
import os
import resource
import shutil
import time
from collections import defaultdict
from dataclasses import replace

from minirlvr.data import append_jsonl, nan_for_null, read_jsonl, to_json, write_atomic, write_jsonl
from minirlvr.pipeline.report import attention_section

class PipelineError(ValueError):
    """A pipeline that cannot go on as asked (a resume with other settings); the message says what to do."""


def attention_summary(att):
    """An attention.json without its per-record rows and head matrix: what results.json keeps."""
    return None if att is None else {k: v for k, v in att.items() if k not in ("per_record", "heads", "skipped")}


def read_numbers(path):
    """A JSON file this pipeline wrote (strict JSON: NaN written as null) with its NaNs back."""
    with open(path) as f:
        return nan_for_null(json.load(f))


def run_tag(name, seed):
    return f"{name.replace(' ', '_').replace('+', '')}-s{seed}"


def check_resume_config(path, resolved):
    """A resumed run must have the settings it started with: refuse, naming every key that differs."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        before = json.load(f)

    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    a, b = flat(before), flat(json.loads(to_json(resolved, default=str)))
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if diff:
        raise PipelineError(f"--resume: {path} was written with other settings; differing keys: "
                         + ", ".join(f"{k} ({a.get(k)!r} then, {b.get(k)!r} now)" for k in diff[:12])
                         + ". Rerun with the original options, or use another --out")


def attention_stage(parts, model, tokenizer, path, resume, log, label):
    """The attention stage of one policy: the parts' held-out records with the policy's own greedy responses
    (parts.attention_items), scored by evaluation/attention.stage_scores. Cached in `path` (+ the scored records
    beside it, *_records.jsonl, for `run.py attention --data`); its random draws never reach the later stages."""
    from minirlvr.engine.checkpoint import isolated_rng
    from minirlvr.evaluation.attention import stage_scores

    if resume and os.path.exists(path):
        return read_numbers(path)
    t0 = time.time()
    with isolated_rng():
        records = parts.attention_items(model, tokenizer)
        t1 = time.time()
        att = stage_scores(model, tokenizer, records)
    att["wall_s"], att["responses_s"] = round(time.time() - t0, 1), round(t1 - t0, 1)
    skipped = {k for k, _ in att["skipped"]}
    write_jsonl(path[:-len(".json")] + "_records.jsonl",
                [r for i, r in enumerate(records) if r.get("key", i) not in skipped])
    write_atomic(path, to_json(att, indent=1))
    groups = att["groups"]
    log(f"{label}: attention to constraints {groups['all']['score'] if 'all' in groups else float('nan'):.3f} "
        f"(1 = their share of the keys; " + ", ".join(f"{g} {v['score']:.3f} n={v['n']}" for g, v in groups.items()
                                                   if g != "all")
        + f"), {att['records']} records, {len(att['skipped'])} skipped, {att['wall_s']:.1f}s "
          f"({att['responses_s']:.1f}s of it generating the responses)")
    return att


def run_one(parts, name, seed, records, root, resume, log, report_to="none"):
    """GRPO of one run through the engine, then its evaluation. Returns the result row (also runs/<tag>/result.json).
    report_to: the run's --report_to (TensorBoard / wandb get its metrics; no number of the run changes)."""
    from minirlvr.train import TrainError, train

    tag = run_tag(name, seed)
    run_dir = os.path.join(root, "runs", tag)
    done = os.path.join(run_dir, "result.json")
    if resume and os.path.exists(done):
        log(f"{tag}: finished earlier, kept ({done})")
        return read_numbers(done)
    if not resume and os.path.exists(run_dir):
        shutil.rmtree(run_dir)  # a fresh experiment replaces its own earlier run folders
    tcfg = replace(parts.train_config(name, seed, run_dir, resume and os.path.isdir(run_dir)), report_to=report_to)
    log(f"{tag}: GRPO {tcfg.steps} steps x {tcfg.prompts_per_step} prompts x {tcfg.group_size} samples on "
        f"{len(records)} prompts ({parts.describe_run(tcfg)})")
    t0 = time.time()
    try:
        result = train(tcfg, reward_fn=parts.reward(name), records=records)
    except TrainError as e:
        if not tcfg.resume:
            raise
        log(f"{tag}: cannot resume ({e}); starting it again")
        shutil.rmtree(run_dir)
        result = train(replace(tcfg, resume=False), reward_fn=parts.reward(name), records=records)
    t_train = time.time() - t0
    metrics = parts.evaluate(result.model, result.tokenizer)
    steps = [h for h in result.history if h.get("step", 0) > 0]
    row = {"variant": name, "seed": seed, "train_s": round(t_train, 1), "wall_s": round(time.time() - t0, 1),
           "train_prompts": len(records), "tokens_trained": int(sum(h.get("tokens", 0) for h in steps)),
           "policy": result.policy_dir, **metrics, **parts.training_metrics(steps)}
    attention_stage(parts, result.model, result.tokenizer, os.path.join(run_dir, "attention.json"), False, log, tag)
    write_atomic(done, to_json(row, indent=1))
    log(f"{tag}: {parts.summary(metrics)}, {row['wall_s']:.0f}s")
    del result
    gc.collect()
    return row


_worker = {}  # in a worker process of run_all: its parts (set up) and its log


def _set_up_worker(make_parts, log_path):
    import tqdm

    def log(msg):
        tqdm.tqdm.write(msg)
        with open(log_path, "a") as f:  # one short append per line: lines of two processes never interleave
            f.write(msg + "\n")

    _worker.update(log=log, parts=make_parts())


def _run_in_worker(name, seed, records, root, resume, report_to):
    return run_one(_worker["parts"], name, seed, records, root, resume, _worker["log"], report_to)


def run_all(parts, plan, data, root, resume, log, report_to, log_path):
    """Every planned run; result rows in plan order. Where the parts allow it (parts.workers()), several runs train
    at once, each in a fresh process of its own: on a 2-core CPU two one-thread runs take about the time of one,
    while a second torch thread in one process gains little on the miniature's small matrices (README, run.py
    figures). A run depends only on its seed and data, never on the process it runs in (the smoke preset's test
    compares the two ways), and each run's folder, checkpoints and --resume work as in sequence."""
    n, make_parts = parts.workers()
    n = min(n, len(plan))
    if n <= 1:
        return [run_one(parts, name, seed, data[arm], root, resume, log, report_to) for name, seed, arm in plan]
    from minirlvr.engine.machine import worker_pool

    log(f"runs: {len(plan)}, {n} at a time, each in a process of its own")
    pool = worker_pool(n, _set_up_worker, (make_parts, log_path))
    try:
        futures = [pool.submit(_run_in_worker, name, seed, data[arm], root, resume, report_to)
                   for name, seed, arm in plan]
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def reproduce(parts, preset, out, resume=False, report_to="none"):
    """Run the pipeline with `parts` (see pipeline/parts.py) into folder `out`; `preset` names the run in its
    config and report. resume: keep what finished in `out`, continue interrupted runs, refuse other settings.
    report_to: every training run's --report_to (engine/report_to.py)."""
    t_start = time.time()
    os.makedirs(out, exist_ok=True)
    resolved = {"preset": preset, "parts": parts.describe()}
    config_path = os.path.join(out, "config.json")
    if resume:
        check_resume_config(config_path, resolved)
    log_path = os.path.join(out, "log.txt")
    if not resume and os.path.exists(log_path):
        os.remove(log_path)

    def log(msg):
        from tqdm import tqdm

        tqdm.write(msg)
        with open(log_path, "a") as f:
            f.write(msg + "\n")

    import torch

    write_atomic(config_path, to_json(resolved, indent=1, default=str))
    from minirlvr.engine.machine import describe, machine_speed

    speed = machine_speed()
    log(f"minirlvr pipeline, preset {preset}, out {out}; {describe(speed)}")
    log(to_json(resolved, default=str))

    # --- the start policy, the judge, the held-out sets; the start's own evaluation
    model, tokenizer = parts.setup(log)
    base_path = os.path.join(out, "start_eval.json")
    if resume and os.path.exists(base_path):
        base = read_numbers(base_path)
    else:
        t0 = time.time()
        base = parts.evaluate(model, tokenizer)
        base["wall_s"] = round(time.time() - t0, 1)
        write_atomic(base_path, to_json(base, indent=1))
    log(f"start: {parts.summary(base)}")
    start_att = attention_stage(parts, model, tokenizer, os.path.join(out, "start_attention.json"), resume, log,
                                "start")

    # --- the arms' data, refinement included (read back on resume)
    data_dir, done = os.path.join(out, "data"), os.path.join(out, "data", "done.json")
    if resume and os.path.exists(done):
        with open(done) as f:
            stats = json.load(f)  # counts, and null for "no refined arm": its nulls are not NaNs
        data = {arm: read_jsonl(os.path.join(data_dir, f"{arm}.jsonl")) for arm in stats["arms"]}
        log(f"data: read back from {data_dir}")
    else:
        t0 = time.time()
        data, stats = parts.training_sets(log)
        stats = dict(stats, arms=list(data), wall_s=round(time.time() - t0, 1))
        for arm, recs in data.items():
            write_jsonl(os.path.join(data_dir, f"{arm}.jsonl"), recs)
        write_atomic(done, to_json(stats, indent=1))
    del model
    parts.release()

    # --- every arm x seed from the same start, then the extra rows the parts ask for
    plan = parts.runs()
    rows = run_all(parts, plan, data, out, resume, log, report_to, log_path)

    # --- report: all runs' per-step metrics in one file, curves, the table
    metrics_path = os.path.join(out, "metrics.jsonl")
    if os.path.exists(metrics_path):
        os.remove(metrics_path)
    histories = defaultdict(list)
    for name, seed, _ in plan:
        run_metrics = os.path.join(out, "runs", run_tag(name, seed), "metrics.jsonl")
        hist = [nan_for_null(r) for r in read_jsonl(run_metrics)]
        histories[name].append(hist)
        for h in hist:
            append_jsonl(metrics_path, {"variant": name, "seed": seed, **h})
    parts.curves(histories, os.path.join(out, "curves.png"))
    text = parts.table(base, rows, stats)
    # the attention stage's section (added after the parts' table, which it does not change)
    att_runs = []
    for (name, seed, _), row in zip(plan, rows):
        path = os.path.join(out, "runs", run_tag(name, seed), "attention.json")
        att = None
        if os.path.exists(path):
            att = read_numbers(path)
        else:
            log(f"{run_tag(name, seed)}: no attention.json (a run finished before the attention stage existed): "
                f"its attention cells stay empty")
        att_runs.append({"variant": name, "seed": seed, "att": att, "row": row})
    text += "\n" + "\n".join(attention_section(start_att, base, att_runs, parts.headline,
                                                os.path.join(out, "attention.png")))
    wall = time.time() - t_start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    text += (f"\n\nTotal wall time: {wall:.0f} s ({wall / 60:.1f} min), {torch.get_num_threads()} torch threads, "
             f"{cpu:.0f} CPU-seconds used by this process, on a machine of {speed['cores']} cores and "
             f"{speed['gflops_1_thread']} GFLOP/s fp32 matmul per thread"
             + (" (a --resume invocation: runs finished earlier are not re-timed)." if resume else "."))
    write_atomic(os.path.join(out, "results.md"), text + "\n")
    write_atomic(os.path.join(out, "results.json"),
                 to_json({"preset": preset, "start": base, "runs": rows, "refine": stats,
                             "attention": {"start": attention_summary(start_att),
                                           "runs": {run_tag(r["variant"], r["seed"]): attention_summary(r["att"])
                                                    for r in att_runs}},
                             **parts.results(), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "machine": speed}, indent=1))
    print("\n" + text)
    print(f"\nwrote {out}/results.md, results.json, metrics.jsonl, curves.png, attention.png, config.json")
    return rows


