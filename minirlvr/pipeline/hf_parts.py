"""The real-model parts for the one pipeline (pipeline/reproduce.py, protocol: pipeline/parts.py): any Hugging Face chat model, 4-bit + LoRA.

    start policy   the preset's model (a local folder, or a hub id already in the local Hugging Face cache; the
                   preset `tiny` builds a tiny random Qwen2 and a byte-level BPE on the spot)
    data           `data build` from the kit's seed tasks (hard_only / soft_only / mixed on the same tasks, and a
                   held-out split with constraint types and kwargs values training never shows), or --data FILE
                   (records, e.g. from `run.py data convert`), split by constraint kind
    judge, critic  an LLM: the start policy itself (during training: the policy's base, adapter off), or another
                   model; the critic answers KEEP/DROP (critic.py), the judge yes/no (llm_judge.py)
    refined arm    mixed -> critic -> one soft constraint per prompt -> learnability pilot (refine_cli.refine)
    reward         per arm: hard-only = verifiers, soft-only = judge, mixed and refined = both (mean); canaries
                   (hard constraints also asked of the judge) on every arm, logged, never paid
    evaluation     greedy answers scored by the verifiers: the held-out split (seen / unseen type / unseen kwargs),
                   IFEval and IFBench files when given (IFEval's four metrics), and the judge asked about the
                   held-out hard constraints: its judged pass rate minus the verified one (the judged-vs-verified
                   gap) and its recall on violations
The paper's headline figures are printed beside ours, labelled as the paper's (Qwen2.5-7B-Instruct, VerInstruct,
Qwen3-32B judge): a different model, data and scale from any preset here.
This file does not train, sample or judge by itself; it wires the kit's commands into the pipeline's parts.
"""

import gc
import math
import os
from collections import defaultdict
from dataclasses import asdict

import torch

from minirlvr import verifiers

from minirlvr.datasets import build as build_data

from minirlvr.refine import critic

from minirlvr.refine import stages as refine_cli
from minirlvr.engine.chat import complete
from minirlvr.data import DataError, read_records
from minirlvr.engine.machine import cpu_threads
from minirlvr.engine.model import ModelError, load_for_inference
from minirlvr.evaluation.benchmarks import BENCHMARKS, Judging
from minirlvr.pipeline.report import (UNITS, by_variant, fallback_label, mean_sd, nanmean, percent_cell, smoke_header,
                                      table_head)

# What the paper reports (arXiv 2601.04954), for the report; never computed here.
PAPER = {
    "setup": "Qwen2.5-7B-Instruct trained with GRPO on VerInstruct; Qwen3-32B as the LLM judge",
    "claims": ["hard-only training beats mixed (hard + judged soft) training on IFEval, Multi-IF, IFBench, "
               "FollowBench and CFBench",
               "the judge's recall on violated constraints: about 21-31% when all of a prompt's constraints are "
               "judged in one call, 55-59% one at a time",
               "the refined data (critic, one soft constraint, learnability) beats competitive baselines by +13.4% "
               "on the five benchmarks with 58% less training time"],
}
ATTENTION_PROMPTS = 64  # held-out prompts the attention stage scores per policy (one greedy response each)
ARM_REWARD = {"hard-only": "hard", "soft-only": "soft", "mixed": "mixed", "refined": "mixed"}
SPLITS = {"hard-only": "hard_only", "soft-only": "soft_only", "mixed": "mixed"}


def tiny_start(folder, seed=0):
    """A tiny random Qwen2 and a byte-level BPE trained on the kit's own texts (seed tasks, soft constraints,
    verifier wordings), saved as a model folder: the `tiny` preset's start policy. Deterministic."""
    from minirlvr.engine.tokenizer import train_tokenizer
    from minirlvr.engine.model import tiny_model
    from minirlvr.datasets.soft_catalogue import SOFT_CATALOGUE

    if os.path.exists(os.path.join(folder, "config.json")):
        return folder
    import random

    tasks = [t[1] for t in build_data.read_seed_tasks(build_data.default_seeds_path())]
    rng = random.Random(seed)
    wordings = [verifiers.describe(i, verifiers.sample_kwargs(i, rng, prompt=tasks[0])) for i in verifiers.ids()
                for _ in range(3)]
    soft = [text for _, text in SOFT_CATALOGUE]
    tok = train_tokenizer(tasks + wordings + soft, vocab_size=600)
    model = tiny_model(vocab_size=len(tok), hidden_size=64, num_layers=2, max_positions=1024, seed=seed,
                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, init_std=0.1)
    tmp = folder + ".tmp"
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    os.replace(tmp, folder)
    return folder


def resolve_model(name):
    """A local folder for the preset's model: the folder itself, or a hub id found in the local HF cache."""
    if os.path.isdir(name):
        return name
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means: not available offline
        raise ModelError(f"model {name!r} is neither a local folder nor in the local Hugging Face cache. Download it "
                         f"once (online): `huggingface-cli download {name} --local-dir models/{name.split('/')[-1]}`, "
                         f"then pass --model models/{name.split('/')[-1]}") from None


def split_by_kind(records):
    """hard_only / soft_only / mixed views of a dataset (records keep what they have of each kind)."""
    hard = [dict(r, soft_constraints=[]) for r in records if r.get("instruction_id_list")]
    soft = [dict(r, instruction_id_list=[], kwargs=[]) for r in records if r.get("soft_constraints")]
    return {"hard_only": hard, "soft_only": soft, "mixed": list(records)}


# The five benchmarks of the paper's table, with the number each column shows (ifeval/ifbench: prompt-level loose)
FIVE = (("ifeval", "IFEval P-loose"), ("ifbench", "IFBench P-loose"), ("multi-if", "Multi-IF overall"),
        ("cfbench", "CFBench PSR"), ("followbench", "FollowBench HSR"))


def with_five_average(row):
    """The row with "five/average": the mean of the five benchmarks' headline numbers, when all five are there."""
    keys = ["ifeval/prompt_level_loose", "ifbench/prompt_level_loose", "multi-if/headline", "cfbench/headline",
            "followbench/headline"]
    values = [row.get(k) for k in keys]
    if all(isinstance(v, (int, float)) and v == v for v in values):
        return {**row, "five/average": sum(values) / len(values)}
    return row


def refined_or_fallback(refined, report, mixed):
    """(the refined arm's records, its data stats). When refinement keeps no prompt (on a tiny model every pilot
    group often passes or fails as a whole) the arm trains on the mixed data instead, and stats["fallback"] is the
    label its report row carries, so the row never reads as refined data."""
    stats = {"refine": {k: v for k, v in report.items() if k != "dropped"}}
    if refined:
        return refined, {**stats, "kept": len(refined)}
    label = fallback_label("refined", report["stages"], len(mixed), "the mixed data's")
    return list(mixed), {**stats, "kept": 0, "trained_on": len(mixed), "fallback": label}


class HFParts:
    """The parts (pipeline/parts.py) on a Hugging Face model. See the module docstring."""

    def __init__(self, preset, out, model=None, data=None, ifeval=None, ifbench=None, threads=None, multiif=None,
                 cfbench=None, followbench=None):
        self.p, self.out = preset, out
        self.model_name = model or preset.model
        self.data_path, self.bench_paths = data, {"ifeval": ifeval, "ifbench": ifbench}
        self.conversation_paths = {"multi-if": multiif, "cfbench": cfbench, "followbench": followbench}
        for option, path in [("--data", data), ("--ifeval", ifeval), ("--ifbench", ifbench), ("--multiif", multiif),
                             ("--cfbench", cfbench)]:
            if path is not None and not os.path.isfile(path):
                raise DataError(f"{option}: no such file {path!r}")
        if followbench is not None and not os.path.exists(followbench):
            raise DataError(f"--followbench: no such folder or file {followbench!r}")
        cpu_threads(threads)  # None: the machine's default
        if not self.model_name:
            raise ModelError(f"preset {preset.name!r} trains a model you name: pass --model PATH (a local folder, or a "
                             f"hub id in the local Hugging Face cache)")
        # a missing model is an error before anything is written (tiny is built in setup)
        self.start = None if self.model_name == "tiny" else resolve_model(self.model_name)

    def describe(self):
        return {**asdict(self.p), "model": self.model_name, "data": self.data_path, **self.bench_paths,
                **{k: v for k, v in self.conversation_paths.items() if v}}

    # --- the start policy, the judge, the data and the held-out sets
    def setup(self, log):
        from minirlvr.evaluation.generate import read_benchmark

        p = self.p
        self.start = self.start or tiny_start(os.path.join(self.out, "start"))
        log(f"start policy: {self.start} ({'4-bit NF4' if p.load_in_4bit else 'full precision'})")
        self.model, self.tokenizer = load_for_inference(self.start, load_in_4bit=p.load_in_4bit)
        self.other_judge = None
        if p.judge_model != "base":
            from minirlvr.reward.llm_judge import load_judge

            self.other_judge = load_judge(p.judge_model, mode=p.judge_mode, load_in_4bit=p.load_in_4bit,
                                          batch_rows=p.judge_batch_rows)
        files, self.manifest = build_data.build(n=p.train_prompts, max_hard=p.max_hard, max_soft=p.max_soft, seed=0,
                                                heldout_n=p.heldout_prompts)
        build_data.write_build(os.path.join(self.out, "build"), files, self.manifest)
        self.splits = split_by_kind(read_records(self.data_path)) if self.data_path else files
        self.sets = {"heldout": files["heldout"]}
        for name, path in self.bench_paths.items():
            if path:
                self.sets[name] = read_benchmark(path)
        self.conversation_sets = {}  # Multi-IF, CFBench, FollowBench: (benchmark, items, conversations)
        for name, path in self.conversation_paths.items():
            if path:
                bench = BENCHMARKS[name]
                items = bench.read(path)
                self.conversation_sets[name] = (bench, items, bench.conversations(items))
        log("held-out sets: " + ", ".join([f"{k} {len(v)} prompts" for k, v in self.sets.items()]
                                          + [f"{k} {len(c)} conversations" for k, (_, _, c) in
                                             self.conversation_sets.items()]))
        return self.model, self.tokenizer

    def release(self):
        """The start policy is no longer needed once the data is refined: each run loads its own copy."""
        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def judge_for(self, model):
        """The judge for a policy: another model if the preset names one, else the policy's base (adapter off)."""
        from minirlvr.reward.llm_judge import LLMJudge

        if self.other_judge is not None:
            return self.other_judge
        return LLMJudge(model, self.tokenizer, self.p.judge_mode, adapter_off=hasattr(model, "disable_adapter"),
                        batch_rows=self.p.judge_batch_rows)

    def evaluate(self, model, tokenizer):
        from minirlvr.evaluation import judge_audit
        from minirlvr.evaluation.verify import evaluate as score

        out = {}
        for name, recs in self.sets.items():
            texts = complete(model, tokenizer, recs, max_new_tokens=self.p.eval_max_new_tokens,
                             batch_rows=self.p.eval_batch_rows, progress=True, desc=f"eval {name}").texts
            pairs = list(enumerate(texts))
            metrics, _, results = score(recs, pairs, name)
            out.update({f"{name}/{k}": v for k, v in metrics.items()})
            if name != "heldout":
                continue
            groups = defaultdict(list)  # seen / type / kwargs: strict pass per constraint
            for rec, res in zip(recs, results):
                for unseen, ok in zip(rec.get("unseen", [None] * len(res["strict"])), res["strict"]):
                    groups[unseen or "seen"].append(float(ok))
            out.update({f"heldout/{g}": nanmean(v) for g, v in groups.items()})
            audit, _, _ = judge_audit.audit_mode(self.judge_for(model), judge_audit.questions(recs, pairs, name))
            n = max(audit["n"], 1)
            out["judge/verified_pass"] = 1 - audit["violated"] / n
            out["judge/judged_pass"] = 1 - audit["judged_violated"] / n
            out["judge/gap"] = out["judge/judged_pass"] - out["judge/verified_pass"]
            out["judge/recall_violated"] = audit["recall_violated"]
            out["judge/recall_violated_readable"] = audit["recall_violated_readable"]
            out["judge/unparseable"] = audit["unparseable"]
            out["judge/questions"] = audit["n"]
        out.update(self.evaluate_conversations(model, tokenizer))
        return out

    def evaluate_conversations(self, model, tokenizer):
        """Multi-IF, CFBench, FollowBench: greedy responses turn by turn, scored by rule or by the preset's judge
        with the benchmark's own prompt; `<bench>/headline` is the number the report's column shows."""
        from minirlvr.evaluation.conversations import generate_turns, judge_asker, responses_of

        out = {}
        for name, (bench, items, chats) in self.conversation_sets.items():
            done = {}
            generate_turns(model, tokenizer, chats, done, None, self.p.eval_max_new_tokens, self.p.eval_batch_rows,
                           desc=f"eval {name}")
            judging = None
            if bench.judged:
                judge = self.judge_for(model)
                judging = Judging("official", judge_asker(judge, self.p.eval_max_new_tokens), judge,
                                  self.p.judge_model)
            scored = bench.score(items, responses_of(chats, done), judging)
            out.update({f"{name}/{k}": v for k, v in scored["metrics"].items()})
            out[f"{name}/headline"] = next(iter(scored["headline"].values()))
        return out

    headline = ("heldout/prompt_level_strict", "held-out prompt-level strict")

    def attention_items(self, model, tokenizer):
        """The first ATTENTION_PROMPTS held-out prompts (hard constraints; "unseen": "type" marks a held-out type)
        with the policy's greedy responses."""
        from minirlvr.evaluation.attention import stage_record

        recs = self.sets["heldout"][:ATTENTION_PROMPTS]
        texts = complete(model, tokenizer, recs, max_new_tokens=self.p.eval_max_new_tokens,
                         batch_rows=self.p.eval_batch_rows, progress=True, desc="attention: responses").texts
        return [stage_record(r, t) for r, t in zip(recs, texts)]

    def summary(self, m):
        parts = [f"held-out prompt-level strict {100 * m['heldout/prompt_level_strict']:.1f}%"]
        for name in ("ifeval", "ifbench"):
            if f"{name}/prompt_level_loose" in m:
                parts.append(f"{name} prompt-level loose {100 * m[f'{name}/prompt_level_loose']:.1f}%")
        parts.append(f"judged-vs-verified gap {100 * m['judge/gap']:+.1f} points")
        return ", ".join(parts)

    # --- data
    def training_sets(self, log):
        from minirlvr.reward.constraint import constraint_reward

        p = self.p
        data = {arm: list(self.splits[split]) for arm, split in SPLITS.items()}
        if "refined" not in p.arms:
            return data, {"refined": None}
        if p.critic_model == "base":
            ask = critic.model_ask(self.model, self.tokenizer, batch_rows=p.judge_batch_rows, progress=True)
        else:
            other, other_tok = load_for_inference(p.critic_model, load_in_4bit=p.load_in_4bit)
            ask = critic.model_ask(other, other_tok, batch_rows=p.judge_batch_rows, progress=True)
        sample = refine_cli.policy_sampler(self.model, self.tokenizer, p.max_new_tokens, p.temperature)
        reward_fn = constraint_reward("mixed", "mean", self.judge_for(self.model))
        work = os.path.join(self.out, "data", "refine.work")
        os.makedirs(work, exist_ok=True)
        refined, report = refine_cli.refine(data["mixed"], ask, sample, reward_fn, work, p.pilot_samples, log=log)
        data["refined"], stats = refined_or_fallback(refined, report, data["mixed"])
        if "fallback" in stats:
            log(f"refine kept no prompt: the arm is labelled {stats['fallback']!r} in the report")
        return data, stats

    # --- runs
    def runs(self):
        return [(arm, seed, arm) for arm in self.p.arms for seed in self.p.seeds]

    def workers(self):
        """One run at a time: a run holds the device (one GPU; a CPU run uses every core already)."""
        return 1, None

    def train_config(self, name, seed, run_dir, resume):
        from minirlvr.engine.config import make_config
        from minirlvr.pipeline.presets import train_values

        p = self.p
        # the preset row's training values (the same as `train --preset NAME`), then this run's own
        return make_config(**{**train_values(p), "model": self.start}, out_dir=run_dir, seed=seed,
                           reward=ARM_REWARD[name], ckpt_every=max(1, p.steps // 4), keep_ckpts=1, log_every=1,
                           rollouts_every=max(1, p.steps // 10), resume=resume)

    def reward(self, name):
        return None  # the engine builds it from the config (reward_from_config): judge = the policy's base

    def describe_run(self, tcfg):
        return f"{'4-bit NF4 base + ' if tcfg.load_in_4bit else ''}LoRA r={tcfg.lora_r}, reward={tcfg.reward}"

    def training_metrics(self, steps):
        """What the judge did at the end of training: the last quarter of the steps."""
        tail = steps[-max(1, len(steps) // 4):]
        return {"end/" + k.split("/", 1)[1]: nanmean(h.get(k, math.nan) for h in tail)
                for k in ("canary/recall_violated", "canary/agreement", "judge/soft_pass") if any(k in h for h in tail)}

    # --- report
    def curves(self, histories, path):
        from minirlvr.pipeline.report import reward_curves

        reward_curves(histories, path, "training reward (red) and the judge's agreement with the verifiers on "
                                       "canaries (blue dashed)",
                      series=(("reward", "training reward"), ("canary/agreement", "canary agreement")))

    def table(self, base, rows, stats):
        # (header, key, kind): "%" a pass rate or recall, shown in percent; "points" a difference of two of them;
        # "n" a count (report.UNITS)
        cols = [("held-out P-strict %", "heldout/prompt_level_strict", "%"),
                ("held-out I-strict %", "heldout/instruction_level_strict", "%"),
                ("unseen type %", "heldout/type", "%"), ("unseen kwargs %", "heldout/kwargs", "%")]
        for name in ("ifeval", "ifbench"):
            if any(f"{name}/prompt_level_loose" in r for r in [base] + rows):
                cols += [(f"{name} {level} %", f"{name}/{key}", "%") for level, key in
                         (("P-strict", "prompt_level_strict"), ("P-loose", "prompt_level_loose"),
                          ("I-strict", "instruction_level_strict"), ("I-loose", "instruction_level_loose"))]
        for name, label in FIVE[2:]:
            if any(f"{name}/headline" in r for r in [base] + rows):
                cols.append((f"{label} %", f"{name}/headline", "%"))
        base, rows = with_five_average(base), [with_five_average(r) for r in rows]
        if any("five/average" in r for r in [base] + rows):
            cols.append(("5-benchmark mean %", "five/average", "%"))
        # recall over readable answers first: an unreadable answer scores "not satisfied", so it counts as a caught
        # violation in the all-answers recall (a judge that never answers readably gets recall 100% there)
        cols += [("judged−verified, points", "judge/gap", "points"),
                 ("judge recall (violated), readable answers %", "judge/recall_violated_readable", "%"),
                 ("judge unreadable answers", "judge/unparseable", "n"), ("judge questions", "judge/questions", "n"),
                 ("judge recall (violated), all answers %", "judge/recall_violated", "%"),
                 ("canary recall, end %", "end/recall_violated", "%"), ("tokens trained", "tokens_trained", "n"),
                 ("wall s", "wall_s", "n")]

        def cells(rs):
            return " | ".join(mean_sd([r.get(k) for r in rs], 0) if kind == "n" else
                              percent_cell([r.get(k) for r in rs]) for _, k, kind in cols)

        p = self.p
        lines = [f"### minirlvr pipeline, preset {p.name}: {self.model_name}, GRPO {p.steps} steps x "
                 f"B={p.prompts_per_step} x G={p.group_size}, L={p.max_new_tokens}, seeds {list(p.seeds)}",
                 *smoke_header(p.name), "",
                 "Greedy answers scored by the verifiers (strict / loose as IFEval). Held-out: seed tasks and "
                 "constraint types / kwargs values no training split shows. Judge columns: the LLM judge "
                 f"({p.judge_model}, {p.judge_mode}) asked about the held-out hard constraints. Values: mean ± sd "
                 f"over seeds. {UNITS} Multi-IF: 'overall' (mean of prompt/instruction-level strict/loose) averaged "
                 "over turns 1-3; CFBench: PSR; FollowBench: HSR averaged over levels 1-5; both judged by "
                 f"{p.judge_model} with the benchmark's own prompt (the paper's judges are GPT-4-class). The "
                 "5-benchmark mean (shown when all five ran) averages IFEval and IFBench prompt-level loose with those "
                 "three.", "",
                 *table_head([c for c, _, _ in cols]),
                 f"| start | {cells([base])} |"]
        for name, rs in by_variant(rows).items():
            label = stats.get("fallback", name) if name == "refined" else name
            lines.append(f"| {label} | {cells(rs)} |")
        refine = stats.get("refine")
        if refine:
            trains = (f"no prompt survived, so the refined arm trains on the mixed data's {stats['trained_on']} "
                      "prompts (its row says so)" if "fallback" in stats else
                      f"the refined arm trains on {stats['kept']} prompts")
            lines += ["", "Refinement: " + " -> ".join(f"{s['stage']} {s['in']}->{s['out']}" for s in refine["stages"])
                      + f"; {trains}."]
        lines += ["", f"**The paper's findings** ({PAPER['setup']}; not this model or scale, not computed here):"]
        lines += [f"- {c}" for c in PAPER["claims"]]
        return "\n".join(lines)

    def results(self):
        return {"paper": PAPER, "build": {k: self.manifest[k] for k in ("seed", "hard_ids", "heldout_ids")}}
