"""`eval --bench multi-if|cfbench|followbench`: generate a model's responses to a benchmark's conversations, turn
by turn and resumable, then score them with the benchmark's rules or its judge (evaluation/benchmarks.py).

Turn t of a conversation is asked with the user turns 1..t and the model's OWN responses to turns 1..t-1 between
them (Multi-IF's protocol; single-turn benchmarks have one turn). Generation is greedy by default and goes through
the kit's sampler (`chat.complete`). Files in --out, as for IFEval / IFBench (generate.py):
    generations.partial.jsonl  one line per (conversation, turn) as it finishes, line 1 the settings: a rerun with
                               the same --out resumes from it and refuses if any setting differs
    generations.jsonl          the same, complete
    responses.jsonl            {"key", "turns": [{"prompt", "response"}, ...]} per conversation
    judge_answers.jsonl        a judged benchmark's judge answers (official mode), reused by a rerun
    metrics.json               the metrics, the headline, the settings; also printed as a table
This file does not know any benchmark's rules.
"""

import hashlib
import os


from minirlvr.data import DataError, append_jsonl, iter_jsonl, to_json, write_atomic, write_jsonl
from minirlvr.engine import chat
from minirlvr.evaluation.benchmarks import BENCHMARKS, Judging
from minirlvr.engine.progress import Progress
from minirlvr.evaluation.generate import FINAL, PARTIAL, drop_cut_line, generation_rows, run_settings, warn_other_base


def read_turns(path, chats, settings):
    """{(index, turn): row} of a generations file written with exactly these settings."""
    rows = generation_rows(path, settings)
    done = {}
    for lineno, row in rows:
        i, t = row.get("index"), row.get("turn")
        if not isinstance(i, int) or not 0 <= i < len(chats):
            raise DataError(f"{path}:{lineno}: field 'index' must be an integer in [0, {len(chats)})")
        if not isinstance(t, int) or not 1 <= t <= len(chats[i].turns):
            raise DataError(f"{path}:{lineno}: field 'turn' must be an integer in [1, {len(chats[i].turns)}]")
        if row.get("prompt") != chats[i].turns[t - 1]:
            raise DataError(f"{path}:{lineno}: field 'prompt' is not turn {t} of conversation {i} in the data")
        if not isinstance(row.get("response"), str):
            raise DataError(f"{path}:{lineno}: field 'response' must be a string")
        done[(i, t)] = row
    return done


def chat_of(conv, t, done, i):
    """The messages turn t is asked with: user turns 1..t, the model's own responses to 1..t-1 between them."""
    messages = []
    for s in range(1, t + 1):
        messages.append({"role": "user", "content": conv.turns[s - 1]})
        if s < t:
            messages.append({"role": "assistant", "content": done[(i, s)]["response"]})
    return messages


def generate_turns(model, tokenizer, chats, done, path, max_new_tokens, batch_rows, temperature=0.0, seed=0,
                   desc="eval"):
    """Generate every (conversation, turn) missing from `done`, one turn at a time across all conversations,
    appending each finished chunk to `path` (None: kept in `done` only). Progress per conversation turn, as a bar
    on a terminal and as a plain line now and then otherwise (engine/progress.py)."""
    progress = Progress(sum(len(c.turns) for c in chats), len(done), desc, desc, "turn")
    for t in range(1, max((len(c.turns) for c in chats), default=0) + 1):
        live = [i for i, c in enumerate(chats) if len(c.turns) >= t]
        # chunks are planned over every live conversation, each with its own seed: a resumed run makes the same
        # chunks with the same seeds as one that was never killed
        chunks = [live[s:s + batch_rows] for s in range(0, len(live), batch_rows)]
        for c, chunk in enumerate(chunks):
            todo = [i for i in chunk if (i, t) not in done]
            if not todo:
                continue
            out = chat.complete(model, tokenizer, [chat_of(chats[i], t, done, i) for i in todo], samples=1,
                                max_new_tokens=max_new_tokens, temperature=temperature, seed=seed + 10_000 * t + c,
                                batch_rows=batch_rows, progress=False)
            for j, i in enumerate(todo):
                row = {"index": i, "turn": t, "key": chats[i].key, "prompt": chats[i].turns[t - 1],
                       "response": out.texts[j], "stopped": out.stopped[j], "length": out.lengths[j]}
                if path:
                    append_jsonl(path, row)
                done[(i, t)] = row
            progress.update(len(todo), sum(out.lengths))
    progress.close()


def responses_of(chats, done):
    """[[response to each turn] per conversation] from `done`."""
    return [[done[(i, t)]["response"] for t in range(1, len(c.turns) + 1)] for i, c in enumerate(chats)]


def cached_ask(ask, path):
    """ask(prompt) -> answer, remembering answers in `path` (JSONL) so that a rerun asks only what is new."""
    known = {}
    if os.path.exists(path):
        drop_cut_line(path)
        for _, row in iter_jsonl(path):
            known[row["sha256"]] = row["answer"]

    def cached(prompt):
        h = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
        if h not in known:
            known[h] = ask(prompt)
            append_jsonl(path, {"sha256": h, "answer": known[h]})
        return known[h]
    return cached


def judging_for(args, bench, out):
    """The judge a judged benchmark needs, loaded after the policy is freed (the same machine holds one at a time)."""
    from minirlvr.reward.llm_judge import load_judge

    mode = args.judge_mode or bench.modes[0]
    if mode not in bench.modes:
        raise DataError(f"--judge-mode {mode!r}: {bench.name} has {', '.join(bench.modes)}")
    judge = load_judge(args.judge_model, mode="pointwise", load_in_4bit=args.judge_4bit, device=args.device,
                       option="--judge-model", batch_rows=args.batch_rows)

    ask = cached_ask(judge_asker(judge, args.judge_max_new_tokens), os.path.join(out, "judge_answers.jsonl"))
    return Judging(mode, ask, judge, args.judge_model)


def judge_asker(judge, max_new_tokens):
    """ask(prompt) -> the judge model's greedy answer to a benchmark's own judge prompt, sent as one user turn."""
    def ask(prompt):
        return chat.complete(judge.model, judge.tokenizer, [prompt], max_new_tokens=max_new_tokens, temperature=0.0,
                             progress=False).texts[0]
    return ask


def run_conversations(args):
    """Generate (or resume), score, write the files; the report dict (also metrics.json)."""
    from minirlvr.engine.model import load_for_inference

    bench = BENCHMARKS[args.bench]
    max_new_tokens = args.max_new_tokens or bench.max_new_tokens
    items = bench.read(args.data)[:args.limit]
    chats = bench.conversations(items)
    if bench.judged and not args.judge_model:
        raise DataError(f"--bench {bench.name} is judged: name the judge with --judge-model (a local model folder; "
                        f"the paper's numbers come from GPT-4-class judges)")
    settings = run_settings(args, max_new_tokens)
    out = args.out
    partial, final = os.path.join(out, PARTIAL), os.path.join(out, FINAL)
    existing = final if os.path.exists(final) else partial if os.path.exists(partial) else None
    if existing:
        done = read_turns(existing, chats, settings)
    else:
        if os.path.exists(os.path.join(out, "metrics.json")):
            raise DataError(f"{out} holds metrics.json but no {PARTIAL} or {FINAL}: not an eval folder this run can "
                            f"resume; use another --out")
        done = {}
    total = sum(len(c.turns) for c in chats)
    print(f"eval {bench.name}: {len(chats)} conversations ({total} turns) from {args.data}, {len(done)} turns already "
          f"generated in {out}")
    if len(done) < total:
        if args.adapter:
            warn_other_base(args.adapter, args.model)
        model, tokenizer = load_for_inference(args.model, args.adapter, args.load_4bit, args.device)
        if existing is None:
            write_jsonl(partial, [{"settings": settings}])
            existing = partial
        generate_turns(model, tokenizer, chats, done, existing, max_new_tokens, args.batch_rows, args.temperature,
                       args.seed, desc=f"eval {bench.name}")
        del model
    if existing == partial:
        os.replace(partial, final)
    responses = responses_of(chats, done)
    write_jsonl(os.path.join(out, "responses.jsonl"),
                [{"key": c.key, "turns": [{"prompt": p, "response": r} for p, r in zip(c.turns, rs)]}
                 for c, rs in zip(chats, responses) if c.turns])
    judging = judging_for(args, bench, out) if bench.judged else None
    scored = bench.score(items, responses, judging)
    cut = [not r["stopped"] for r in done.values()]
    report = {"bench": bench.name, "metric": bench.metric, "settings": settings, "out": out,
              "judge": None if judging is None else {"model": judging.name, "mode": judging.mode},
              "n_conversations": len(chats), "n_turns": total, "metrics": scored["metrics"],
              "headline": scored["headline"], "table": scored["table"],
              "generation": {"mean_tokens": sum(r["length"] for r in done.values()) / max(len(done), 1),
                             "cut_at_max_new_tokens": sum(cut) / max(len(cut), 1)}}
    write_atomic(os.path.join(out, "metrics.json"), to_json(report, indent=1, ensure_ascii=False) + "\n")
    return report


def format_conversations(report):
    s, gen = report["settings"], report["generation"]
    (name, value), = report["headline"].items()
    lines = [f"eval {report['bench']}: model {s['model']}" + (f" + adapter {s['adapter']}" if s["adapter"] else ""),
             report["table"], "",
             f"  headline ({report['bench']}): {name} {100 * value:.2f}   [{report['metric']}]",
             f"  mean response length {gen['mean_tokens']:.1f} tokens; {100 * gen['cut_at_max_new_tokens']:.1f}% cut "
             f"at --max-new-tokens {s['max_new_tokens']} (no EOS)",
             f"\n  wrote responses.jsonl, metrics.json, {FINAL} in {report['out']}"]
    return "\n".join(lines)
