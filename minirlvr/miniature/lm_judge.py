"""The miniature's language-model judge: a small causal LM of the kit's own kind, taught from the world's truth to
answer the LLM judge's two templates, so that `python run.py` can show the paper's judge finding on a CPU.

    path = build_or_load(LMJudgeConfig(), cache_dir="runs/cache")      # a folder AutoModelForCausalLM can load
    judges = load(path)                                                 # {"pointwise": LLMJudge, "batched": LLMJudge}
    judges["batched"].check([(record, response, record["soft_constraints"])])

The judge is a sibling of the SFT policy (a Qwen2 from scratch, its own byte-level BPE), trained by the same loop
(sft.train_sft) on judge questions instead of prompts: a world record answered by the world's grammar, put into
reward/llm_judge.py's POINTWISE_TEMPLATE (one constraint) or BATCHED_TEMPLATE (a numbered list, one answer line
each), the answers from the world's truth (verifiers for hard constraints, the hidden rules for soft ones). A soft
verdict comes after the rule's evidence, as a reasoning judge writes it: "positive words: good; negative words:
none. Answer: yes" (world.soft_evidence), "1. long words: remarkably. Answer: no" in a list. A bare "yes"/"no" did not
work: trained from scratch on bare verdicts every try stayed at the prior (always "yes" or always "no"; 0.22M to
1.04M parameters, 200 to 1,500 steps of 32 questions, also from the SFT policy), because the verdict is an
interaction (which constraint x which words) with no signal in either part alone; with the evidence first, each
evidence token is a copy of a nearby word the constraint selects, and the verdict a local function of the evidence.
Hard constraints are asked too (a share of 1 - soft_share), worded by `verifiers.describe` and answered bare: that
is what the canaries and `python run.py judge-audit` ask; with no evidence to write, the judge learns them poorly.
At use it is an ordinary LLMJudge: the kit's sampler, the same answer parser, the same unreadable-answer rule,
a budget of 40 tokens per constraint; nothing in the judge path knows it is small. Its mistakes are its own: the
questions come from grammar-written answers, the policy's drift is never shown to it.
This file does not compute rewards or measure the judge (parts.py does both).
"""

import random
from dataclasses import dataclass

from minirlvr import verifiers
from minirlvr.miniature import sft, world
from minirlvr.reward.llm_judge import BATCHED_TEMPLATE, NO_PROMPT, POINTWISE_TEMPLATE, LLMJudge, fill, numbered


@dataclass(frozen=True)
class LMJudgeConfig:
    # the training loop's fields (sft.train_sft reads them): one judge question per sequence. Measured on 150
    # held-out mixed prompts' soft constraints (2026-12-06): 900 steps give accuracy 76% pointwise and 78% batched,
    # violation recall 73% and 63%; lr 1e-2 or a third layer did no better within that noise (71 violations)
    steps: int = 900
    batch_size: int = 32
    lr: float = 5e-3
    warmup: int = 30
    vocab_size: int = 1024
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 192
    max_positions: int = 512  # a batched question about 5 constraints is ~300 tokens
    seed: int = 0
    # the questions
    p_follow: float = 0.5  # how often the grammar follows each constraint (as for the SFT corpus)
    batched_share: float = 0.5  # questions in the batched template; the rest are pointwise
    soft_share: float = 0.85  # questions about the soft constraints alone (as the reward asks) when there are any
    no_prompt_share: float = 0.1  # questions without the request ("(not shown)": the critic asks text alone)


def constraints_with_truth(record, response):
    """[(English text, satisfied?, "hard"|"soft", the rule's evidence or None)] for every constraint of a world
    record. Soft constraints carry world.soft_evidence (the words the hidden rule looked at); hard ones none."""
    t = world.truth(record, response)
    hard = [(verifiers.describe(i, kw), ok, "hard", None)
            for i, kw, ok in zip(record["instruction_id_list"], record["kwargs"], t["hard"])]
    return hard + [(world.SOFT_TEXT[spec], ok, "soft", world.soft_evidence(spec, response))
                   for spec, ok in zip(world.soft_specs_of(record), t["soft"])]


def verdict(ok, evidence):
    """The answer about one constraint: the evidence first, when there is any, then the verdict. A reasoning
    judge's form; the kit's parser reads "... Answer: yes" (a final marker) as readily as a bare "yes"."""
    word = "yes" if ok else "no"
    return word if evidence is None else f"{evidence}. Answer: {word}"


def question(record, response, rng, cfg):
    """One judge question about a response, and its true answer, in the form LLMJudge asks and parses."""
    cons = constraints_with_truth(record, response)
    prompt = NO_PROMPT if rng.random() < cfg.no_prompt_share else record["prompt"]
    soft = [c for c in cons if c[2] == "soft"]
    about_soft = soft and rng.random() < cfg.soft_share
    if rng.random() < cfg.batched_share:
        # a numbered list as the reward asks it (the record's soft constraints), or as the canaries and the audit
        # ask it (hard ones) or everything at once
        lists = [[c for c in cons if c[2] == "hard"], cons]
        asked = soft if about_soft else rng.choice([x for x in lists if x])
        q = fill(BATCHED_TEMPLATE, {"prompt": prompt, "response": response,
                                    "constraints": numbered([c[0] for c in asked])})
        return q, "\n".join(f"{i}. {verdict(ok, ev)}" for i, (_, ok, _, ev) in enumerate(asked, 1))
    text, ok, _, ev = rng.choice(soft if about_soft else cons)
    return fill(POINTWISE_TEMPLATE, {"prompt": prompt, "response": response, "constraint": text}), verdict(ok, ev)


def corpus(cfg, n=None):
    """(records, answers) for sft.train_sft: the first n (default steps x batch_size) judge questions, each as
    {"prompt": question}; a shorter corpus is the start of a longer one."""
    rng = random.Random(f"lm-judge:{cfg.seed}")
    n = cfg.steps * cfg.batch_size if n is None else n
    records, answers = [], []
    # seeds 20000+: disjoint from the SFT corpus (0..), the training pools (0..3) and the held-out sets (1001..)
    for rec in world.record_stream("sft", seed=20_000 + cfg.seed):
        if len(records) == n:
            break
        if not world.constraints_of(rec):
            continue
        q, a = question(rec, world.write_response(rec, rng, p_follow=cfg.p_follow), rng, cfg)
        records.append({"prompt": q})
        answers.append(a)
    return records, answers


FINGERPRINT = 256  # questions hashed into the cache key: any change to the world or the templates changes them


def build_or_load(cfg, cache_dir, progress=True, log=print):
    """Path of the cached judge model for cfg (trained first if needed; folder <cache_dir>/judge-<key>). The key
    hashes the config and the corpus's first FINGERPRINT questions (the whole corpus takes 10-25 s to write)."""
    return sft.build_or_load(cfg, cache_dir, progress=progress, log=log, make_corpus=corpus, name="judge",
                             fingerprint=lambda c: corpus(c, FINGERPRINT))


def is_cached(cfg, cache_dir):
    """True when build_or_load(cfg, cache_dir) would load without training."""
    return sft.is_cached(*sft.cache_path(cfg, cache_dir, corpus(cfg, FINGERPRINT), "judge"))


def load(path, batch_rows=256):
    """{mode: LLMJudge} over one loaded copy of the judge model at path. Its answers give the rule's evidence
    before each verdict: ~25 tokens per constraint at most (3 words of each kind), so 40 leaves room."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return {mode: LLMJudge(model, tokenizer, mode, batch_rows=batch_rows, tokens_per_constraint=40)
            for mode in ("pointwise", "batched")}
