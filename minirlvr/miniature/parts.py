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

import math
import random
from dataclasses import asdict, dataclass, field

import torch

from minirlvr.engine.model import cpu_threads
from minirlvr.pipeline.report import by_variant, mean, mean_sd, table_head
from minirlvr.refine import filters as refine
from minirlvr.reward.judge import judge_soft, precision_recall
from minirlvr.miniature import judge as judge_mod
from minirlvr.miniature import sft as sft_mod
from minirlvr.miniature import world
from minirlvr.miniature.judge import JudgeConfig
from minirlvr.miniature.sft import SFTConfig

ARMS = ["hard-only", "soft-only", "mixed", "refined"]
POOLS = {"hard-only": "hard", "soft-only": "soft", "mixed": "mixed"}


@dataclass(frozen=True)
class MiniatureConfig:
    preset: str = "miniature"
    sft: SFTConfig = field(default_factory=SFTConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
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
    extra_seeds: tuple = (0,)  # seeds of the extra hard-only row that uses the other path
    # refinement
    refine_candidates: int = 600
    pilot_samples: int = 4
    # evaluation: held-out prompts x samples at the training temperature
    eval_hard: int = 150
    eval_soft: int = 100
    eval_unseen: int = 100
    eval_samples: int = 4
    # the attention stage: this many held-out prompts of each kind (seen hard, soft, unseen hard type), one greedy
    # response each, per policy (~1 s per policy for 3 x 24 prompts: the stage stays a rounding error of the run)
    attention_prompts: int = 24


# What only the miniature has, per preset; everything else comes from the preset row in presets.py.
EXTRAS = {
    "miniature": {},
    "miniature-quick": dict(sft=SFTConfig(steps=150), refine_candidates=200, eval_soft=60, eval_unseen=60,
                            eval_samples=2, attention_prompts=8),
    "miniature-smoke": dict(sft=SFTConfig(steps=8, batch_size=16), judge=JudgeConfig(n_records=200, epochs=1),
                            ckpt_every=1, refine_candidates=16, eval_soft=6, eval_unseen=6, eval_samples=2,
                            attention_prompts=4),
}


def config_of(preset):
    """The MiniatureConfig of a miniature preset row (its shared numbers) plus its EXTRAS."""
    return MiniatureConfig(preset=preset.name, seeds=tuple(preset.seeds), steps=preset.steps,
                           prompts_per_step=preset.prompts_per_step, group_size=preset.group_size,
                           max_new_tokens=preset.max_new_tokens, temperature=preset.temperature, beta=preset.beta,
                           micro_batch_size=preset.micro_batch_size, pool_size=preset.train_prompts,
                           lora=preset.load_in_4bit, lora_lr=preset.lr, lora_r=preset.lora_r,
                           pilot_samples=preset.pilot_samples, eval_hard=preset.heldout_prompts, **EXTRAS[preset.name])


def extra_arm(cfg):
    """The extra hard-only row: the fine-tuning path the main arms do not use."""
    return "hard-only full-FT" if cfg.lora else "hard-only 4bit+LoRA"


def sample_texts(model, tokenizer, records, k, max_new_tokens, temperature, seed):
    """k completions per record with the kit's sampler (prompt-major), in input order: (texts, stopped, lengths)."""
    from minirlvr.engine.chat import complete

    out = complete(model, tokenizer, records, samples=k, max_new_tokens=max_new_tokens, temperature=temperature,
                   seed=seed, batch_rows=256, sort_by_length=False)
    return out.texts, out.stopped, out.lengths


def make_reward(judge):
    """reward_fn(records, completions) for train(): mean pass over the prompt's constraints, soft ones judged.
    parts: hard, soft_judged, soft_true (NaN where a rollout has none), true (the reward with the world's truth
    in place of the judge: what the policy really achieves)."""

    def reward_fn(records, completions):
        judged = judge_soft(judge, records, completions).ok
        rewards, parts = [], {"hard": [], "soft_judged": [], "soft_true": [], "true": []}
        for n, (rec, text) in enumerate(zip(records, completions)):
            t = world.truth(rec, text)
            hard, soft_true = [float(x) for x in t["hard"]], [float(x) for x in t["soft"]]
            soft_j = [float(y) for y in judged[n]]
            rewards.append(mean(hard + soft_j) if hard + soft_j else 0.0)
            parts["true"].append(mean(hard + soft_true) if hard + soft_true else 0.0)
            parts["hard"].append(mean(hard))
            parts["soft_judged"].append(mean(soft_j))
            parts["soft_true"].append(mean(soft_true))
        return rewards, parts

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


def se(p, n):
    """Binomial standard error over n prompts (the samples of one prompt are correlated, so n is prompts)."""
    return math.sqrt(max(p * (1 - p), 0.0) / max(n, 1))


COLUMNS = [("hard prompt-level", "hard_prompt"), ("hard instr-level", "hard_instr"), ("soft true", "soft_true"),
           ("soft judged", "soft_judged"), ("gap judged−true", "gap"), ("unseen", "unseen"),
           ("unseen types", "unseen_types"), ("unseen kwargs", "unseen_kwargs"), ("no-EOS", "no_eos"),
           ("len", "len")]


class MiniatureParts:
    """The parts (pipeline/parts.py) on the synthetic world. See the module docstring."""

    def __init__(self, preset, cache, threads=1):
        self.cfg = config_of(preset)
        self.cache = cache
        cpu_threads(threads)

    def describe(self):
        return asdict(self.cfg)

    # --- the start policy, the judge and the held-out sets
    def setup(self, log):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        cfg = self.cfg
        self.sft_path = sft_mod.build_or_load(cfg.sft, self.cache, log=log)
        self.sft_meta = sft_mod.load_meta(self.sft_path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.sft_path)
        self.model = AutoModelForCausalLM.from_pretrained(self.sft_path, dtype=torch.float32).eval()
        self.judge, self.judge_stats = judge_mod.build_or_load(cfg.judge, self.sft_path, self.tokenizer, log=log)
        # held-out prompts: seeds disjoint from every training set's (training sets use seeds 0..99)
        self.sets = {"hard": world.sample_records("eval_hard", cfg.eval_hard, seed=1001),
                     "soft": world.sample_records("eval_soft", cfg.eval_soft, seed=1002),
                     "unseen": world.sample_records("eval_unseen", cfg.eval_unseen, seed=1003)}
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
        judged = [v[0] for v in self.judge.check([(recs[i // k], t, recs[i // k]["soft_constraints"][:1])
                                                  for i, t in enumerate(texts)]).ok]
        out["soft_true"] = mean(true)
        out["soft_judged"] = mean(judged)
        out["gap"] = out["soft_judged"] - out["soft_true"]
        out["judge_precision"], out["judge_recall"] = precision_recall(judged, true)
        out["n_soft_violations"] = sum(not t for t in true)

        recs = self.sets["unseen"]
        texts, _, _ = sample_texts(model, tokenizer, recs, k, cfg.max_new_tokens, cfg.temperature, seed + 2)
        ok = [(recs[i // k]["instruction_id_list"][0], world.truth(recs[i // k], t)["hard"][0])
              for i, t in enumerate(texts)]
        out["unseen"] = mean(x for _, x in ok)
        out["unseen_types"] = mean(x for i, x in ok if i in world.UNSEEN_HARD)
        out["unseen_kwargs"] = mean(x for i, x in ok if i not in world.UNSEEN_HARD)
        return out

    # --- data
    def training_sets(self, log):
        """{arm: records}. Training seeds (0, 1, 2, 3) are disjoint from the evaluation seeds (1001..1003)."""
        cfg, judge = self.cfg, self.judge
        sets = {v: world.sample_records(kind, cfg.pool_size, seed=i) for i, (v, kind) in enumerate(POOLS.items())}
        cands = world.sample_records("mixed", cfg.refine_candidates, seed=3)
        kept, dropped = world_critic(cands, soft_check=lambda c, r: judge.check([(None, r, [c])]).ok[0][0])
        rng = random.Random(0)
        kept = [refine.one_soft(r, rng) for r in kept]
        reward_fn = make_reward(judge)
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
        """[(run name, seed, the arm whose data it trains on)]: every arm x seed, then the extra path's row."""
        cfg = self.cfg
        return [(a, s, a) for a in ARMS for s in cfg.seeds] + [(extra_arm(cfg), s, "hard-only") for s in cfg.extra_seeds]

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
        return make_reward(self.judge)

    def release(self):
        """Nothing to free: the SFT model is ~1M parameters."""

    def training_metrics(self, steps):
        return {}

    def describe_run(self, tcfg):
        return "4-bit NF4 base + LoRA r=%d" % tcfg.lora_r if tcfg.use_lora else "full fine-tuning"

    # --- report
    def curves(self, histories, path):
        from minirlvr.pipeline.report import reward_curves

        reward_curves(histories, path,
                      "red: training reward (judged where soft constraints are judged); blue dashed: world truth")

    def table(self, base, rows, refine_stats):
        cfg, judge_stats, sft_meta = self.cfg, self.judge_stats, self.sft_meta
        n_soft = cfg.eval_soft * cfg.eval_samples
        lines = [f"### minirlvr CPU experiment ({cfg.preset}): GRPO {cfg.steps} steps x B={cfg.prompts_per_step} x "
                 f"G={cfg.group_size} per run, seeds {list(cfg.seeds)}",
                 "",
                 f"Judge (learned, {judge_stats['examples']} training examples): on the SFT policy's samples of "
                 f"{cfg.eval_soft} held-out soft prompts x {cfg.eval_samples}, violation precision "
                 f"{base['judge_precision']:.3f}, recall {base['judge_recall']:.3f} "
                 f"({base['n_soft_violations']} true violations of {n_soft}); on held-out grammar answers precision "
                 f"{judge_stats['heldout_violation_precision']:.3f}, recall "
                 f"{judge_stats['heldout_violation_recall']:.3f}.",
                 f"SFT model: {sft_meta['params'] / 1e6:.2f}M params, {sft_meta['config']['steps']} steps. "
                 f"Held-out: {cfg.eval_hard} hard, {cfg.eval_soft} soft, {cfg.eval_unseen} unseen prompts x "
                 f"{cfg.eval_samples} samples at T={cfg.temperature}. Values: mean ± sd over seeds. Sampling noise of "
                 f"one evaluation (binomial SE over prompts) at the SFT start: hard prompt-level "
                 f"±{se(base['hard_prompt'], cfg.eval_hard):.3f}, soft ±{se(base['soft_true'], cfg.eval_soft):.3f}, "
                 f"unseen ±{se(base['unseen'], cfg.eval_unseen):.3f}.",
                 f"Refined data: {refine_stats['candidates']} mixed prompts -> {refine_stats['kept']} "
                 f"(critic -{refine_stats['dropped_conflict'] + refine_stats['dropped_infeasible']}, "
                 f"pilot -{refine_stats['dropped_unlearnable']}).",
                 "",
                 *table_head([c for c, _ in COLUMNS], first="variant", extra=["wall s/run"]),
                 "| SFT start | " + " | ".join(mean_sd([base[k]]) if k != "len" else f"{base[k]:.1f}" for _, k in COLUMNS)
                 + " | |"]
        by = by_variant(rows)
        for name, rs in by.items():
            cells = [mean_sd([r[k] for r in rs], 1 if k == "len" else 3) for _, k in COLUMNS]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean_sd([r['wall_s'] for r in rs], 0)} |")
        hard = [r["hard_prompt"] for r in by.get("hard-only", [])]
        if len(hard) == 1:
            lines += ["", f"Hard-only GRPO vs SFT start on held-out hard prompts (prompt-level): "
                          f"{hard[0] - base['hard_prompt']:+.3f} (one seed: no seed spread measured)."]
        elif hard:
            m = mean(hard)
            sd = math.sqrt(mean((v - m) ** 2 for v in hard))
            spread = max(hard) - min(hard)
            lines += ["", f"Hard-only GRPO vs SFT start on held-out hard prompts (prompt-level): "
                          f"{m - base['hard_prompt']:+.3f} (seed sd {sd:.3f}, range {spread:.3f}); above the seed "
                          f"spread: {'yes' if m - base['hard_prompt'] > spread else 'no'}."]
        return "\n".join(lines)

    def results(self):
        """What results.json keeps about the parts themselves."""
        return {"judge": self.judge_stats, "sft_meta": {k: v for k, v in self.sft_meta.items() if k != "key"}}

