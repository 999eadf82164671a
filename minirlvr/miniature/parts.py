"""The miniature's parts for the one pipeline (pipeline/reproduce.py, protocol: pipeline/parts.py): what `python run.py` plugs in on a CPU.

    start policy   a ~1M-parameter Qwen2 trained from scratch on the synthetic world (sft.py, cached)
    judge          a tiny learned classifier (judge.py, cached): its mistakes are its own
    data           the world's hard-only / soft-only / mixed pools; refined = mixed -> critic (the world's writer
                   asked to follow every constraint, its drafts checked by the verifiers and the judge) -> one soft
                   constraint per prompt -> pilot learnability filter
    reward         mean pass over a record's constraints, soft ones judged; the world's truth is logged beside it
                   (`reward/true`) and never paid
    evaluation     held-out world prompts, several samples each at the training temperature, scored by the world's
                   truth: hard, soft (true and judged), and constraint types / kwargs values never seen in RL
    attention      the first held-out prompts of each kind (seen hard, soft, unseen hard type) with the policy's
                   greedy response, for the pipeline's attention stage (attention_items)

The main arms train LoRA adapters on the 4-bit NF4 base (bitsandbytes + peft), the paper's setup; one extra row
runs hard-only GRPO with full fine-tuning of the fp32 model, so the table shows what each path does at this size.
The numbers are the preset's (presets.py); the knobs only the miniature has (SFT, judge, evaluation sizes) are in
EXTRAS below. This file does not define the world, the judge or the GRPO math, and does not orchestrate.
"""

import functools
import math
import os
import random
from dataclasses import asdict, dataclass, field

import torch

from minirlvr.engine.machine import cores, cpu_threads, worker_pool
from minirlvr.pipeline.report import (UNITS, by_variant, fallback_label, mean, mean_sd, percent_cell, smoke_header,
                                      table_head)
from minirlvr.refine import filters as refine
from minirlvr.evaluation.judge_audit import PAPER_LABEL, PAPER_RECALL
from minirlvr.evaluation.judge_audit import metrics as audit_metrics
from minirlvr.reward.constraint import constraint_reward
from minirlvr.miniature import judge as judge_mod
from minirlvr.miniature import lm_judge
from minirlvr.miniature import sft as sft_mod
from minirlvr.miniature import world
from minirlvr.miniature.judge import JudgeConfig
from minirlvr.miniature.lm_judge import LMJudgeConfig
from minirlvr.miniature.sft import SFTConfig

ARMS = ["hard-only", "soft-only", "mixed", "refined"]
# The judges every evaluation asks: the LM judge in its two modes (lm_judge.py) and the bag classifier (judge.py),
# the baseline row and the critic's soft check.
JUDGES = ("pointwise", "batched", "bag")
JUDGE_NAMES = {"pointwise": "LM judge, pointwise", "batched": "LM judge, batched", "bag": "bag classifier"}
POOLS = {"hard-only": "hard", "soft-only": "soft", "mixed": "mixed"}


@dataclass(frozen=True)
class MiniatureConfig:
    preset: str = "miniature"
    sft: SFTConfig = field(default_factory=SFTConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)  # the bag classifier: critic and baseline
    # The LM judge (lm_judge.py; None: none): `python run.py` pays the main arms' soft reward with it (pointwise) and
    # trains the batched_arms once more with its batched mode; --quick keeps the bag classifier (its 3 minutes do not
    # hold the judge's training)
    lm_judge: LMJudgeConfig = None
    reward_judge: str = "bag"  # the main arms' soft reward: "bag", or the LM judge's mode ("pointwise", "batched")
    batched_arms: tuple = ()  # arms also trained with the batched LM judge (seeds: extra_seeds)
    canaries: int = 0  # hard constraints per step also asked of the judge (reward/monitor.py); LM judges only
    seeds: tuple = (0, 1)
    # GRPO (the same for every arm: the same budget)
    steps: int = 60
    prompts_per_step: int = 8  # B
    group_size: int = 8  # G
    max_new_tokens: int = 64
    temperature: float = 1.0
    lr: float = 3e-4  # full fine-tuning
    # k3 KL to the SFT model. Without KL the prototype collapsed onto one template; at 0.02 hard-only rollouts
    # drifted to 9% without EOS (2 seeds), at 0.05 to 0-0.3% with the same held-out hard gain.
    beta: float = 0.05
    micro_batch_size: int = 64
    ckpt_every: int = 20
    pool_size: int = 600  # prompts per training set
    lora: bool = True  # main arms: 4-bit NF4 base + LoRA (True) or full fine-tuning (False)
    lora_lr: float = 3e-3  # LoRA updates a low-rank slice: it needs a larger step than full fine-tuning
    lora_r: int = 8
    extra_seeds: tuple = (0,)  # seeds of the extra rows: the batched-judge arms, hard-only on the other path
    # refinement
    refine_candidates: int = 600
    pilot_samples: int = 4
    # evaluation: held-out prompts x samples at the training temperature
    eval_hard: int = 150
    eval_soft: int = 100
    eval_unseen: int = 100
    eval_samples: int = 4
    # the LM judges' canary audit: held-out mixed prompts (1-2 hard constraints) x eval_samples, each answer's hard
    # constraints asked as the canaries ask them (0: none; the bag classifier knows soft constraints only)
    eval_judge: int = 0
    # the attention stage: this many held-out prompts of each kind (seen hard, soft, unseen hard type), one greedy
    # response each, per policy (~1 s per policy for 3 x 24 prompts: the stage stays a rounding error of the run)
    attention_prompts: int = 24
    # runs train in parallel worker processes (MiniatureParts.workers); the smoke preset keeps them in-process, where
    # its tests can watch them
    parallel_runs: bool = True


# What only the miniature has, per preset; everything else comes from the preset row in presets.py.
EXTRAS = {
    "miniature": dict(lm_judge=LMJudgeConfig(), reward_judge="pointwise", batched_arms=("soft-only", "mixed"),
                      canaries=4, eval_judge=40),
    "miniature-quick": dict(sft=SFTConfig(steps=150), refine_candidates=200, eval_soft=60, eval_unseen=60,
                            eval_samples=2, attention_prompts=8),
    "miniature-smoke": dict(sft=SFTConfig(steps=8, batch_size=16), judge=JudgeConfig(n_records=200, epochs=1),
                            lm_judge=LMJudgeConfig(steps=6, batch_size=8, vocab_size=512, hidden=32, layers=1,
                                                   intermediate=64),
                            reward_judge="pointwise", batched_arms=("soft-only", "mixed"), canaries=4, eval_judge=4, ckpt_every=1, refine_candidates=16, eval_soft=6, eval_unseen=6, eval_samples=2,
                            attention_prompts=4, parallel_runs=False),
}


def config_of(preset):
    """The MiniatureConfig of a miniature preset row (its shared numbers) plus its EXTRAS."""
    shared = dict(preset=preset.name, seeds=tuple(preset.seeds), steps=preset.steps,
                  prompts_per_step=preset.prompts_per_step, group_size=preset.group_size,
                  max_new_tokens=preset.max_new_tokens, temperature=preset.temperature, beta=preset.beta,
                  micro_batch_size=preset.micro_batch_size, pool_size=preset.train_prompts, lora=preset.load_in_4bit,
                  lora_lr=preset.lr, lora_r=preset.lora_r, pilot_samples=preset.pilot_samples,
                  eval_hard=preset.heldout_prompts)
    return MiniatureConfig(**{**shared, **EXTRAS[preset.name]})


BATCHED = ", batched judge"  # the name suffix of a run whose soft reward is the batched LM judge


def judge_of(cfg, name):
    """The judge (a key of JUDGES) that pays a run's soft reward."""
    return "batched" if name.endswith(BATCHED) else cfg.reward_judge


def extra_arm(cfg):
    """The extra hard-only row: the fine-tuning path the main arms do not use."""
    return "hard-only full-FT" if cfg.lora else "hard-only 4bit+LoRA"


def sample_texts(model, tokenizer, records, k, max_new_tokens, temperature, seed):
    """k completions per record with the kit's sampler (prompt-major), in input order: (texts, stopped, lengths)."""
    from minirlvr.engine.chat import complete

    out = complete(model, tokenizer, records, samples=k, max_new_tokens=max_new_tokens, temperature=temperature,
                   seed=seed, batch_rows=256, sort_by_length=False)
    return out.texts, out.stopped, out.lengths


def make_reward(judge, canaries=0, seed=0):
    """reward_fn(records, completions) for train(): mean pass over the prompt's constraints, soft ones judged, as
    the kit's constraint_reward computes it (with its canaries: `canaries` hard constraints per step also asked of
    the judge, logged as canary/*). parts: hard, soft_judged, soft_true (NaN where a rollout has none), true (the
    reward with the world's truth in place of the judge: what the policy really achieves)."""
    judged_reward = constraint_reward("mixed", "mean", judge, canaries, seed)

    def reward_fn(records, completions):
        rewards, judged_parts = judged_reward(records, completions)
        reward_fn.last_metrics = judged_reward.last_metrics
        parts = {"hard": [], "soft_judged": [], "soft_true": [], "true": []}
        for n, (rec, text) in enumerate(zip(records, completions)):
            # hard verdicts as constraint_reward computed them: one verifier pass per rollout (language detection,
            # behind the lowercase check, is the slow part of a step's scoring)
            hard = [judged_parts[f"hard:{iid}"][n] for iid in rec.get("instruction_id_list", [])]
            soft_true = [float(world.soft_truth(spec, text)) for spec in world.soft_specs_of(rec)]
            soft_j = [judged_parts[f"soft:{i}"][n] for i in range(len(soft_true))]
            parts["true"].append(mean(hard + soft_true) if hard + soft_true else 0.0)
            parts["hard"].append(mean(hard))
            parts["soft_judged"].append(mean(soft_j))
            parts["soft_true"].append(mean(soft_true))
        return rewards, parts

    reward_fn.last_metrics = {}
    return reward_fn


def world_critic(records, soft_check, tries=12, seed=0):
    """(kept records, {reason: count}): the conflict table, then the world's writer as feasibility critic."""
    kept, dropped = [], {"conflict": 0, "infeasible": 0}
    for r in records:
        if refine.hard_conflict(r):
            dropped["conflict"] += 1
        elif not world.feasible(r, random.Random(f"critic:{seed}:{r['key']}"), tries, soft_check):
            dropped["infeasible"] += 1
        else:
            kept.append(r)
    return kept, dropped


def judge_scores(prefix, judged, true, parsed):
    """judge-audit's numbers (evaluation/judge_audit.metrics) for a judge against the world's truth (parallel lists,
    True = satisfied / readable), as <prefix>_<name>: precision and recall on violations with an unreadable answer
    counted as "not satisfied" (as the reward counts it), the recall over readable answers only, the unreadable
    share and the number of true violations."""
    m = audit_metrics(judged, true, parsed)
    return {f"{prefix}_precision": m["precision_violated"], f"{prefix}_recall": m["recall_violated"],
            f"{prefix}_recall_readable": m["recall_violated_readable"],
            f"{prefix}_unreadable": m["unparseable"] / m["n"] if m["n"] else math.nan,
            f"{prefix}_violations": m["violated"], f"{prefix}_n": m["n"]}


def se(p, n):
    """Binomial standard error over n prompts (the samples of one prompt are correlated, so n is prompts)."""
    return math.sqrt(max(p * (1 - p), 0.0) / max(n, 1))


COLUMNS = [("hard prompt-level %", "hard_prompt"), ("hard instr-level %", "hard_instr"), ("soft true %", "soft_true"),
           ("soft judged %", "soft_judged"), ("gap judged−true, points", "gap"),
           ("its judge's violation recall, readable answers % (unreadable %)", "judge_recall"),
           ("canary recall, first → last 10 steps %", "canary"),
           ("unseen %", "unseen"), ("unseen types %", "unseen_types"), ("unseen kwargs %", "unseen_kwargs"),
           ("no-EOS %", "no_eos"), ("len", "len")]
CANARY_WINDOW = 10  # steps pooled for the canary recall at the start and at the end of a run


def own_judge(cfg, row, variant=None):
    """A run's soft columns as its own judge saw them (a batched-judge run: the batched judge's verdicts)."""
    name = judge_of(cfg, variant or row["variant"])
    judged = row[f"soft_judged_{name}"]
    return {"soft_judged": judged, "gap": judged - row["soft_true"],
            "judge_recall_readable": row[f"judge_{name}_recall_readable"],
            "judge_unreadable": row[f"judge_{name}_unreadable"]}


def cell(rows, key):
    """One table cell over a variant's rows (one per seed): percent for rates, tokens for len, the canary recall
    at the start and at the end of training."""
    if key == "len":
        return mean_sd([r[key] for r in rows], 1)
    if key == "judge_recall":  # over readable answers first (#25), the unreadable share beside it
        return (f"{percent_cell([r['judge_recall_readable'] for r in rows])} "
                f"({percent_cell([r['judge_unreadable'] for r in rows])})")
    if key == "canary":
        if not any("canary_recall_start" in r for r in rows):
            return ""
        return (f"{percent_cell([r['canary_recall_start'] for r in rows])} → "
                f"{percent_cell([r['canary_recall_end'] for r in rows])}")
    return percent_cell([r[key] for r in rows])


def ready_parts(preset, cache, threads):
    """MiniatureParts with their setup done, in a worker process of the pipeline (everything from the cache)."""
    parts = MiniatureParts(preset, cache, threads, workers=1)
    parts.setup(log=lambda msg: None)
    return parts


class MiniatureParts:
    """The parts (pipeline/parts.py) on the synthetic world. See the module docstring."""

    def __init__(self, preset, cache, threads=1, workers=None):
        self.cfg = config_of(preset)
        self.preset, self.cache, self.threads = preset, cache, threads
        self.n_workers = workers  # None: as many runs at once as the machine has cores for (cfg.parallel_runs)
        cpu_threads(threads)

    def describe(self):
        return asdict(self.cfg)

    # --- the start policy, the judge and the held-out sets
    def setup(self, log):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        cfg = self.cfg
        judge_build = None
        if cfg.lm_judge and self.workers()[0] > 1 and not lm_judge.is_cached(cfg.lm_judge, self.cache):
            # the LM judge does not need the SFT model: it trains in a second process meanwhile (a second core)
            log("judge model: training in a second process while the SFT model trains")
            pool = worker_pool(1)
            judge_build = pool.submit(lm_judge.build_or_load, cfg.lm_judge, self.cache, False)
            pool.shutdown(wait=False)
        self.sft_path = sft_mod.build_or_load(cfg.sft, self.cache, log=log)
        self.sft_meta = sft_mod.load_meta(self.sft_path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.sft_path)
        self.model = AutoModelForCausalLM.from_pretrained(self.sft_path, dtype=torch.float32).eval()
        self.bag, self.judge_stats = judge_mod.build_or_load(cfg.judge, self.sft_path, self.tokenizer, log=log)
        self.judges, self.judge_meta = {"bag": self.bag}, None
        if cfg.lm_judge:
            judge_path = judge_build.result() if judge_build else lm_judge.build_or_load(cfg.lm_judge, self.cache,
                                                                                         log=log)
            self.judge_meta = sft_mod.load_meta(judge_path)
            if judge_build:
                m = self.judge_meta
                log(f"judge model: {m['params'] / 1e6:.2f}M params, final loss {m['final_loss']:.3f}, "
                    f"{m['wall_s']:.0f}s -> {judge_path}")
            self.judges.update(lm_judge.load(judge_path))
        # held-out prompts: seeds disjoint from every training set's (training sets use seeds 0..99)
        self.sets = {"hard": world.sample_records("eval_hard", cfg.eval_hard, seed=1001),
                     "soft": world.sample_records("eval_soft", cfg.eval_soft, seed=1002),
                     "unseen": world.sample_records("eval_unseen", cfg.eval_unseen, seed=1003),
                     "judge": world.sample_records("mixed", cfg.eval_judge, seed=1004)}
        return self.model, self.tokenizer

    headline = ("unseen", "held-out unseen constraints' pass rate")

    def attention_items(self, model, tokenizer):
        """The first few held-out prompts of each kind, with the policy's greedy responses (one each)."""
        from minirlvr.evaluation.attention import stage_record

        cfg, n = self.cfg, self.cfg.attention_prompts
        unseen_types = [r for r in self.sets["unseen"] if r["instruction_id_list"][0] in world.UNSEEN_HARD]
        recs = self.sets["hard"][:n] + self.sets["soft"][:n] + unseen_types[:n]
        recs = [dict(r, key=f"{r['source'].split(':')[-1]}-{r['key']}") for r in recs]
        texts, _, _ = sample_texts(model, tokenizer, recs, 1, cfg.max_new_tokens, 0.0, seed=0)
        return [stage_record(r, t, ["type" if i in world.UNSEEN_HARD else None for i in r["instruction_id_list"]])
                for r, t in zip(recs, texts)]

    def summary(self, m):
        return (f"hard {m['hard_prompt']:.3f} (prompt) {m['hard_instr']:.3f} (instr), soft true {m['soft_true']:.3f} "
                f"judged {m['soft_judged']:.3f}, unseen {m['unseen']:.3f}; judge violation precision "
                f"{m['judge_precision']:.3f} recall {m['judge_recall']:.3f}")

    def evaluate(self, model, tokenizer, seed=1234):
        """Held-out metrics of one model. K samples per prompt at the training temperature (greedy flatters)."""
        cfg, k, out = self.cfg, self.cfg.eval_samples, {}
        recs = self.sets["hard"]
        texts, stopped, lengths = sample_texts(model, tokenizer, recs, k, cfg.max_new_tokens, cfg.temperature, seed)
        hard = [world.truth(recs[i // k], t)["hard"] for i, t in enumerate(texts)]
        out["hard_prompt"] = mean(all(h) for h in hard)
        out["hard_instr"] = mean(x for h in hard for x in h)
        out["no_eos"] = 1 - mean(stopped)
        out["len"] = mean(lengths)
        out["distinct"] = len(set(texts)) / len(texts)
        out["sample_hard"] = texts[0]

        recs = self.sets["soft"]
        texts, _, _ = sample_texts(model, tokenizer, recs, k, cfg.max_new_tokens, cfg.temperature, seed + 1)
        true = [world.truth(recs[i // k], t)["soft"][0] for i, t in enumerate(texts)]
        items = [(recs[i // k], t, recs[i // k]["soft_constraints"][:1]) for i, t in enumerate(texts)]
        out["soft_true"] = mean(true)
        out["n_soft_violations"] = sum(not t for t in true)
        for name in self.judge_names():
            v = self.judges[name].check(items)
            judged = [row[0] for row in v.ok]
            out[f"soft_judged_{name}"] = mean(judged)
            out.update(judge_scores(f"judge_{name}", judged, true, [row[0] for row in v.parsed]))
        # the reward's judge: what the main arms were paid by
        out["soft_judged"] = out[f"soft_judged_{cfg.reward_judge}"]
        out["gap"] = out["soft_judged"] - out["soft_true"]
        out["judge_precision"] = out[f"judge_{cfg.reward_judge}_precision"]
        out["judge_recall"] = out[f"judge_{cfg.reward_judge}_recall"]
        out.update(self.canary_audit(model, tokenizer, seed + 3))

        recs = self.sets["unseen"]
        texts, _, _ = sample_texts(model, tokenizer, recs, k, cfg.max_new_tokens, cfg.temperature, seed + 2)
        ok = [(recs[i // k]["instruction_id_list"][0], world.truth(recs[i // k], t)["hard"][0])
              for i, t in enumerate(texts)]
        out["unseen"] = mean(x for _, x in ok)
        out["unseen_types"] = mean(x for i, x in ok if i in world.UNSEEN_HARD)
        out["unseen_kwargs"] = mean(x for i, x in ok if i not in world.UNSEEN_HARD)
        return out

    def judge_names(self):
        return [name for name in JUDGES if name in self.judges]

    def canary_audit(self, model, tokenizer, seed):
        """The LM judges on this policy's answers to the held-out mixed prompts, asked about each answer's HARD
        constraints as the canaries ask them (a list: one call each pointwise, numbered in one call batched),
        scored against the verifiers. Keys audit_<judge>_hard_<recall|precision|...>; none without an LM judge (the
        bag classifier was taught soft constraints only) or with eval_judge = 0."""
        cfg, k, recs = self.cfg, self.cfg.eval_samples, self.sets["judge"]
        names = [n for n in self.judge_names() if n != "bag"]
        if not names or not recs:
            return {}
        texts, _, _ = sample_texts(model, tokenizer, recs, k, cfg.max_new_tokens, cfg.temperature, seed)
        items, true = [], []
        for i, text in enumerate(texts):
            hard = [(c, ok) for c, ok, kind, _ in lm_judge.constraints_with_truth(recs[i // k], text) if kind == "hard"]
            items.append((recs[i // k], text, [c for c, _ in hard]))
            true += [ok for _, ok in hard]
        out = {}
        for name in names:
            v = self.judges[name].check(items)
            out.update(judge_scores(f"audit_{name}_hard", [x for row in v.ok for x in row], true,
                                    [x for row in v.parsed for x in row]))
        return out

    # --- data
    def training_sets(self, log):
        """{arm: records}. Training seeds (0, 1, 2, 3) are disjoint from the evaluation seeds (1001..1003)."""
        cfg, bag = self.cfg, self.bag
        sets = {v: world.sample_records(kind, cfg.pool_size, seed=i) for i, (v, kind) in enumerate(POOLS.items())}
        cands = world.sample_records("mixed", cfg.refine_candidates, seed=3)
        kept, dropped = world_critic(cands, soft_check=lambda c, r: bag.check([(None, r, [c])]).ok[0][0])
        rng = random.Random(0)
        kept = [refine.one_soft(r, rng) for r in kept]
        reward_fn = make_reward(self.judges[cfg.reward_judge])
        k = cfg.pilot_samples
        texts, _, _ = sample_texts(self.model, self.tokenizer, kept, k, cfg.max_new_tokens, cfg.temperature, seed=77)
        rewards, _ = reward_fn([r for r in kept for _ in range(k)], texts)
        rates = [mean(rewards[i * k:(i + 1) * k]) for i in range(len(kept))]
        refined = refine.learnable(kept, rates)
        stats = {"candidates": len(cands), "dropped_conflict": dropped["conflict"],
                 "dropped_infeasible": dropped["infeasible"], "after_critic": len(kept),
                 "dropped_unlearnable": len(kept) - len(refined), "kept": len(refined), "pilot_samples": k}
        log(f"refined data: {stats['candidates']} mixed prompts -> critic drops {stats['dropped_conflict']} "
            f"conflicting and {stats['dropped_infeasible']} infeasible -> at most one soft constraint each -> pilot "
            f"({k} samples) drops {stats['dropped_unlearnable']} with pass rate 0 or 1 -> {stats['kept']} prompts")
        if not refined:
            refined = kept  # a degenerate pilot (tiny presets): train on the critic's output rather than nothing
        sets["refined"] = refined
        return sets, stats

    # --- runs
    def runs(self):
        """[(run name, seed, the arm whose data it trains on)]: every arm x seed, the arms also trained with the
        batched judge, then the extra path's row."""
        cfg = self.cfg
        return ([(a, s, a) for a in ARMS for s in cfg.seeds]
                + [(a + BATCHED, s, a) for a in cfg.batched_arms for s in cfg.extra_seeds]
                + [(extra_arm(cfg), s, "hard-only") for s in cfg.extra_seeds])

    def workers(self):
        """Runs at once: one per `threads` cores (2 on a 2-core machine at one thread), each in a process of its
        own that loads the cached SFT model and judges (ready_parts); the smoke preset trains in this process."""
        if self.n_workers is None and not self.cfg.parallel_runs:
            return 1, None
        n = self.n_workers or max(1, cores() // max(1, self.threads))
        return n, functools.partial(ready_parts, self.preset, self.cache, self.threads)

    def train_config(self, name, seed, run_dir, resume):
        from minirlvr.engine.config import make_config

        cfg = self.cfg
        lora = cfg.lora != (name == extra_arm(cfg))
        return make_config(model=self.sft_path, load_in_4bit=lora, use_lora=lora, lora_r=cfg.lora_r,
                           lora_alpha=2 * cfg.lora_r, out_dir=run_dir, seed=seed, steps=cfg.steps,
                           prompts_per_step=cfg.prompts_per_step, group_size=cfg.group_size,
                           max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                           lr=cfg.lora_lr if lora else cfg.lr, beta=cfg.beta, micro_batch_size=cfg.micro_batch_size,
                           ckpt_every=cfg.ckpt_every, keep_ckpts=1, eval_every=0, log_every=0, rollouts_every=20,
                           rollouts_shown=1, resume=resume, device="cpu")

    def reward(self, name):
        return make_reward(self.judges[judge_of(self.cfg, name)], self.cfg.canaries, seed=0)

    def release(self):
        """Nothing to free: the SFT model is ~1M parameters."""

    def training_metrics(self, steps):
        """The judge during training: canary recall on violated hard constraints pooled over the first and the
        last CANARY_WINDOW steps (one step has too few violations), and its unreadable answers over the run."""
        w = min(CANARY_WINDOW, len(steps) // 2)

        def recall(rows):
            violated = sum(r.get("canary/violated", 0) for r in rows)
            return sum(r.get("canary/caught", 0) for r in rows) / violated if violated else math.nan

        calls = sum(r.get("judge/calls", 0) for r in steps)
        return {"canary_recall_start": recall(steps[:w]) if w else math.nan,
                "canary_recall_end": recall(steps[-w:]) if w else math.nan,
                "judge_unreadable_train": sum(r.get("judge/unparseable", 0) for r in steps) / calls if calls
                else math.nan}

    def describe_run(self, tcfg):
        return "4-bit NF4 base + LoRA r=%d" % tcfg.lora_r if tcfg.use_lora else "full fine-tuning"

    # --- report
    def curves(self, histories, path):
        """curves.png (reward vs the world's truth) and, beside it, judge_curves.png: judged vs true soft
        satisfaction of every run with soft constraints, the batched-judge runs next to the pointwise ones."""
        from minirlvr.pipeline.report import reward_curves

        reward_curves(histories, path,
                      "red: training reward (judged where soft constraints are judged); blue dashed: world truth")
        soft = {name: h for name, h in histories.items()  # runs whose rollouts had soft constraints (else NaN)
                if any(not math.isnan(r.get("reward/soft_true", math.nan)) for rows in h for r in rows)}
        if soft:
            reward_curves(soft, os.path.join(os.path.dirname(path), "judge_curves.png"),
                          "soft constraints during training: judged by the run's judge (red) vs the world's truth "
                          "(blue dashed)", series=(("reward/soft_judged", "judged soft satisfaction"),
                                                   ("reward/soft_true", "true soft satisfaction")))

    def judge_table(self, base):
        """The judges on the SFT policy's answers, against the world's truth, beside the paper's judge."""
        cfg, pct = self.cfg, lambda v: percent_cell([v])
        lines = ["#### The judges on the SFT policy's answers, against the world's truth", "",
                 f"Soft: the {cfg.eval_soft} held-out soft prompts x {cfg.eval_samples} answers of the main table, "
                 f"one soft constraint each."
                 + (f" Hard (LM judges only): {cfg.eval_judge} held-out mixed prompts x {cfg.eval_samples} answers, "
                    f"their hard constraints asked as the canaries ask them." if cfg.eval_judge else "")
                 + " Recall on violations: of the truly violated constraints, the share the judge said were not "
                 "satisfied (an unreadable answer counts as 'not satisfied', as in the reward; the readable-only "
                 "recall beside it).",
                 "", *table_head(["soft: violation recall %", "readable only %", "violation precision %",
                                  "unreadable %", "violations", "hard: violation recall %", "readable only %",
                                  "unreadable %", "violations"], first="judge")]
        for name in self.judge_names():
            cells = []
            for k, precision in ((f"judge_{name}", True), (f"audit_{name}_hard", False)):
                if f"{k}_recall" not in base:
                    cells += ["n/a"] * (5 if precision else 4)
                    continue
                cells += [pct(base[f"{k}_recall"]), pct(base[f"{k}_recall_readable"])]
                cells += [pct(base[f"{k}_precision"])] if precision else []
                cells += [pct(base[f"{k}_unreadable"]), str(base[f"{k}_violations"])]
            about = [w for w, yes in (("the reward's judge", name == cfg.reward_judge),
                                      ("the critic's soft check", name == "bag")) if yes]
            about = f" ({'; '.join(about)})" if about else ""
            lines.append(f"| {JUDGE_NAMES[name]}{about} | " + " | ".join(cells) + " |")
        for mode, (lo, hi) in PAPER_RECALL.items():
            lines.append(f"| {PAPER_LABEL}, {mode} (the paper's, not ours) | {100 * lo:.0f}–{100 * hi:.0f} | | | | "
                         f"| | | | |")
        meta = self.judge_meta
        lines += ["", f"Bag classifier: {self.judge_stats['examples']} training examples (grammar answers, the world's "
                      f"truth); on held-out grammar answers violation precision "
                      f"{100 * self.judge_stats['heldout_violation_precision']:.1f}%, recall "
                      f"{100 * self.judge_stats['heldout_violation_recall']:.1f}%."]
        if meta:
            lines[-1] += (f" LM judge: {meta['params'] / 1e6:.2f}M-parameter Qwen2 of its own BPE, trained from "
                          f"scratch on {meta['config']['steps'] * meta['config']['batch_size']} judge questions in the "
                          f"kit's two templates (minirlvr/miniature/lm_judge.py), final loss {meta['final_loss']:.3f}.")
        return lines

    def table(self, base, rows, refine_stats):
        cfg, sft_meta = self.cfg, self.sft_meta
        columns = [c for c in COLUMNS if c[1] != "canary" or cfg.canaries]
        refined = "refined"
        if refine_stats["kept"] == 0:  # the pilot kept nothing and the arm trained on the critic's output
            refined = fallback_label("refined", [{"stage": "pilot", "in": refine_stats["after_critic"], "out": 0}],
                                     refine_stats["after_critic"], "the critic's")
        lines = [f"### minirlvr CPU experiment ({cfg.preset}): GRPO {cfg.steps} steps x B={cfg.prompts_per_step} x "
                 f"G={cfg.group_size} per run, seeds {list(cfg.seeds)}",
                 *smoke_header(cfg.preset),
                 "",
                 f"Soft reward: the {JUDGE_NAMES[cfg.reward_judge]}"
                 + (f"; rows ending in '{BATCHED.strip(', ')}' were paid by the LM judge in batched mode"
                    if cfg.batched_arms else "")
                 + (f"; {cfg.canaries} hard constraints per step also go to the run's judge (canaries)"
                    if cfg.canaries else "") + f". {UNITS}",
                 f"SFT model: {sft_meta['params'] / 1e6:.2f}M params, {sft_meta['config']['steps']} steps. "
                 f"Held-out: {cfg.eval_hard} hard, {cfg.eval_soft} soft, {cfg.eval_unseen} unseen prompts x "
                 f"{cfg.eval_samples} samples at T={cfg.temperature}. Values: mean ± sd over seeds. Sampling noise of "
                 f"one evaluation (binomial SE over prompts) at the SFT start: hard prompt-level "
                 f"±{100 * se(base['hard_prompt'], cfg.eval_hard):.1f}, soft "
                 f"±{100 * se(base['soft_true'], cfg.eval_soft):.1f}, unseen "
                 f"±{100 * se(base['unseen'], cfg.eval_unseen):.1f} points.",
                 f"Refined data: {refine_stats['candidates']} mixed prompts -> {refine_stats['kept']} "
                 f"(critic -{refine_stats['dropped_conflict'] + refine_stats['dropped_infeasible']}, "
                 f"pilot -{refine_stats['dropped_unlearnable']}).",
                 "",
                 *table_head([c for c, _ in columns], first="variant", extra=["wall s/run"]),
                 "| SFT start | " + " | ".join(cell([dict(base, **own_judge(cfg, base, "SFT start"))], k)
                                              for _, k in columns) + " | |"]
        by = by_variant([dict(r, **own_judge(cfg, r)) for r in rows])
        for name, rs in by.items():
            label = refined if name == "refined" else name
            lines.append(f"| {label} | " + " | ".join(cell(rs, k) for _, k in columns)
                         + f" | {mean_sd([r['wall_s'] for r in rs], 0)} |")
        hard = [r["hard_prompt"] for r in by.get("hard-only", [])]
        if len(hard) == 1:
            lines += ["", f"Hard-only GRPO vs SFT start on held-out hard prompts (prompt-level): "
                          f"{100 * (hard[0] - base['hard_prompt']):+.1f} points (one seed: no seed spread measured)."]
        elif hard:
            m = mean(hard)
            sd = math.sqrt(mean((v - m) ** 2 for v in hard))
            spread = max(hard) - min(hard)
            lines += ["", f"Hard-only GRPO vs SFT start on held-out hard prompts (prompt-level): "
                          f"{100 * (m - base['hard_prompt']):+.1f} points (seed sd {100 * sd:.1f}, range "
                          f"{100 * spread:.1f}); above the seed spread: {'yes' if m - base['hard_prompt'] > spread else 'no'}."]
        return "\n".join(lines + [""] + self.judge_table(base))

    def results(self):
        """What results.json keeps about the parts themselves."""
        return {"judge": self.judge_stats, "sft_meta": {k: v for k, v in self.sft_meta.items() if k != "key"},
                "lm_judge_meta": {k: v for k, v in (self.judge_meta or {}).items() if k != "key"}}

