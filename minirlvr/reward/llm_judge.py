"""A local LLM judge for soft constraints: any Hugging Face chat model, asked through the kit's own sampler.

    judge = LLMJudge(model, tokenizer, mode="pointwise", adapter_off=True)   # the policy's own base, LoRA off
    v = judge.check([(record, response, ["Use a warm, friendly tone."])])
    v.ok[0][0], v.unparseable                                                # verdict, unreadable answers

Two modes (the paper, arXiv 2601.04954, compares them):
- "pointwise": one constraint per call, the form the paper recommends (its Qwen3-32B judge caught 55-59% of
  violated constraints this way);
- "batched": all of an item's constraints in one call, numbered, as VerIF's reward does (21-31% caught).
Answers are greedy and short. `parse_answer` / `parse_numbered` read them: yes/no and a few synonyms in any case
and punctuation, a leading explanation, a final "Answer: yes", numbered lines "2. no", a closed <think> block.
An answer that cannot be read is counted (`Verdicts.unparseable`) and scored as NOT satisfied: an unreadable
judge must never pay the policy. Identical questions (same prompt, response and constraint or constraint list)
within one `check` call are asked once.

The prompt templates are constants a user can replace (`template=`): POINTWISE_TEMPLATE needs {response} and
{constraint}, BATCHED_TEMPLATE {response} and {constraints} (a numbered list); {prompt} (the user's request) is
optional in both. Placeholders are filled in one pass, so other braces in a template are kept as written.
Models that think before answering (Qwen3's default chat template) need a template or max_new_tokens that
leaves room for it; an unclosed <think> block is unreadable.

This file does not compute rewards (reward.py) or decide what is asked (hard-constraint canaries, audits).
"""

import re
from dataclasses import dataclass

from minirlvr.engine.chat import complete
from minirlvr.engine.config import ConfigError
from minirlvr.data import prompt_text
from minirlvr.reward.judge import Verdicts
from minirlvr.engine.model import ModelError, load_for_inference

POINTWISE_TEMPLATE = """You are a strict judge of instruction following. You see a user's request, a response to it, \
and one constraint that the response must satisfy.

[Request]
{prompt}

[Response]
{response}

[Constraint]
{constraint}

Does the response satisfy the constraint? Reply with one word: yes or no."""

BATCHED_TEMPLATE = """You are a strict judge of instruction following. You see a user's request, a response to it, \
and a numbered list of constraints that the response must satisfy.

[Request]
{prompt}

[Response]
{response}

[Constraints]
{constraints}

For each constraint, decide whether the response satisfies it. Reply with one line per constraint, in order, \
written as "<number>. yes" or "<number>. no", and nothing else."""

TEMPLATES = {"pointwise": POINTWISE_TEMPLATE, "batched": BATCHED_TEMPLATE}
NEEDS = {"pointwise": ("response", "constraint"), "batched": ("response", "constraints")}
PLACEHOLDER = re.compile(r"\{(prompt|response|constraint|constraints)\}")
NO_PROMPT = "(not shown)"  # {prompt} for items without a record (the miniature's critic asks about text alone)

# ---------------------------------------------------------------------------------------------- parsing

WORDS = {"yes": True, "y": True, "true": True, "pass": True, "passed": True, "satisfied": True,
         "no": False, "n": False, "false": False, "fail": False, "failed": False, "not satisfied": False,
         "unsatisfied": False, "violated": False}
_WORD = r"(not satisfied|unsatisfied|satisfied|violated|yes|no|true|false|passed|pass|failed|fail)"
MARKER = re.compile(r"\b(?:final answer|answer|verdict|judgement|judgment)\s*(?:is\s*)?[:=\-]?\s*" + _WORD + r"\b")
FIRST = re.compile(r"\s*(yes|no|true|false)\b")
HEDGE = re.compile(r"\s*(yes|no)\s*(and|or|/)\s*(yes|no)\b")  # "yes and no": no verdict
NUMBERED = re.compile(r"\s*[-+•]?\s*(?:constraint\s*)?(\d+)\s*[.):\-]?\s*(.*)")


def _clean(text):
    text = re.sub(r"<think>.*?</think>", " ", text.lower(), flags=re.S)
    if "<think>" in text:  # cut off while thinking: no answer was given
        text = text[:text.index("<think>")]
    return re.sub(r"[*_`#>\[\]\"'()]", " ", text)


def parse_answer(text):
    """True (satisfied), False (not satisfied) or None (unreadable), from a judge's free-text answer.

    In order: the last "answer/verdict: <word>"; the whole answer being one word ("Yes.", "NO", "y"); its first
    word being yes/no/true/false ("No, the response ..."); its last line being one word (an explanation, then
    "Yes."); exactly one of "yes"/"no" appearing anywhere. Anything else is None, e.g. "yes and no", or both
    words in an explanation with no marker."""
    t = _clean(text)
    marked = MARKER.findall(t)
    if marked:
        return WORDS[marked[-1]]
    whole = t.strip(" \t\n.,;:!?-")
    if whole in WORDS:
        return WORDS[whole]
    if HEDGE.match(t):
        return None
    first = FIRST.match(t)
    if first:
        return WORDS[first.group(1)]
    lines = [line.strip(" \t.,;:!?-") for line in t.splitlines() if line.strip(" \t.,;:!?-")]
    if lines and lines[-1] in WORDS:
        return WORDS[lines[-1]]
    said = set(re.findall(r"\b(yes|no)\b", t))
    if len(said) == 1:
        return WORDS[said.pop()]
    return None


def parse_numbered(text, n):
    """n verdicts (True / False / None) from a batched answer: lines "1. yes", "Constraint 2: no", "3) No, ...".
    Unreadable lines are skipped (a model that first echoes the numbered list is still read); a number answered
    both yes and no is None. Without any numbered line: n plain lines, one verdict each, or for n == 1 the whole
    answer. Missing numbers are None."""
    said = [set() for _ in range(n)]
    t = _clean(text)
    numbered = False
    for line in t.splitlines():
        m = NUMBERED.match(line)
        if not m or not m.group(2).strip():
            continue
        k = int(m.group(1)) - 1
        if 0 <= k < n:
            numbered = True
            said[k].add(parse_answer(m.group(2)))
    out = [None if len(s - {None}) != 1 else (s - {None}).pop() for s in said]
    if not numbered:
        lines = [line for line in t.splitlines() if line.strip(" \t.,;:!?-")]
        if len(lines) == n:
            out = [parse_answer(line) for line in lines]
        elif n == 1:
            out = [parse_answer(t)]
    return out


# ---------------------------------------------------------------------------------------------- templates


def check_template(template, mode, option="template"):
    """The template for `mode` (the default when None); a missing placeholder is an error naming `option`."""
    if mode not in TEMPLATES:
        raise ConfigError(f"judge mode must be one of {tuple(TEMPLATES)}, got {mode!r}")
    if template is None:
        return TEMPLATES[mode]
    if not isinstance(template, str):
        raise ConfigError(f"{option}: a judge template must be a string, got {type(template).__name__}")
    found = set(PLACEHOLDER.findall(template))
    missing = [p for p in NEEDS[mode] if p not in found]
    if missing:
        raise ConfigError(f"{option}: the {mode} judge template lacks the placeholder(s) "
                          f"{', '.join('{' + p + '}' for p in missing)} (it has "
                          f"{', '.join('{' + p + '}' for p in sorted(found)) or 'none'})")
    wrong = "constraints" if mode == "pointwise" else "constraint"
    if wrong in found:
        raise ConfigError(f"{option}: the {mode} judge template uses {{{wrong}}}, which only the "
                          f"{'batched' if mode == 'pointwise' else 'pointwise'} template fills")
    return template


def fill(template, values):
    """Placeholders replaced in one pass: a response that contains "{constraint}" stays as written."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def numbered(constraints):
    return "\n".join(f"{i}. {c}" for i, c in enumerate(constraints, 1))


# ---------------------------------------------------------------------------------------------- the judge


@dataclass
class LLMJudge:
    model: object
    tokenizer: object
    mode: str = "pointwise"  # "pointwise" or "batched"
    adapter_off: bool = False  # True: answer as the base of a LoRA policy (the adapter is back on afterwards)
    template: str = None  # None: POINTWISE_TEMPLATE / BATCHED_TEMPLATE
    max_new_tokens: int = None  # None: 8 + tokens_per_constraint for each constraint one call asks about
    tokens_per_constraint: int = 8  # a verdict's budget; a judge that gives its reasons first needs more
    batch_rows: int = 64  # judge calls decoded together
    option: str = "template"  # the option name that error messages use for the template
    progress: bool = False  # a tqdm bar over the judge calls (audits; training keeps its own bar)

    def __post_init__(self):
        self.template = check_template(self.template, self.mode, self.option)

    def _ask(self, prompts, max_new_tokens):
        """Greedy answers, in eval mode (restored afterwards), through the kit's sampler."""
        was_training = self.model.training
        self.model.eval()
        try:
            return complete(self.model, self.tokenizer, prompts, samples=1, max_new_tokens=max_new_tokens,
                            temperature=0.0, batch_rows=self.batch_rows, adapter_off=self.adapter_off,
                            progress=self.progress, desc=f"judge ({self.mode})").texts
        finally:
            self.model.train(was_training)

    def check(self, items):
        """The judge interface: items are (record or None, response, [constraint text]); one verdict per
        constraint. Each distinct question is asked once."""
        items = [(NO_PROMPT if rec is None else prompt_text(rec), text, list(cs)) for rec, text, cs in items]
        if self.mode == "pointwise":
            keys = [[(p, r, c) for c in cs] for p, r, cs in items]
            unique = list(dict.fromkeys(k for row in keys for k in row))
            prompts = [fill(self.template, {"prompt": p, "response": r, "constraint": c}) for p, r, c in unique]
            texts = self._ask(prompts, self.max_new_tokens or 8 + self.tokens_per_constraint) if unique else []
            answer = {k: (parse_answer(t), t) for k, t in zip(unique, texts)}
            got = [[answer[k] for k in row] for row in keys]
            unparseable = sum(v is None for v, _ in answer.values())
        else:
            keys = [(p, r, tuple(cs)) for p, r, cs in items]
            unique = list(dict.fromkeys(k for k in keys if k[2]))
            prompts = [fill(self.template, {"prompt": p, "response": r, "constraints": numbered(cs)})
                       for p, r, cs in unique]
            longest = max((len(k[2]) for k in unique), default=0)
            texts = self._ask(prompts, self.max_new_tokens or 8 + self.tokens_per_constraint * longest) if unique \
                else []
            answer = {k: [(v, t) for v in parse_numbered(t, len(k[2]))] for k, t in zip(unique, texts)}
            got = [answer[k] if k[2] else [] for k in keys]
            unparseable = sum(v is None for row in answer.values() for v, _ in row)
        return Verdicts(ok=[[v is True for v, _ in row] for row in got],
                        parsed=[[v is not None for v, _ in row] for row in got],
                        calls=len(unique), unparseable=unparseable, answers=[[t for _, t in row] for row in got])


def adapters_enabled(model):
    """True when `model` has LoRA layers and none is switched off (after a judge pass it must be so)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    return bool(layers) and not any(m.disable_adapters for m in layers)


def load_judge(judge_model, policy=None, tokenizer=None, mode="pointwise", load_in_4bit=False, device="auto",
               template=None, option="--judge_model", batch_rows=64):
    """An LLMJudge: "base" = the LoRA policy passed in, asked with its adapter off (no second copy of the
    weights); anything else is a model folder or hub id loaded for inference (4-bit optional)."""
    if judge_model == "base":
        if policy is None:
            raise ConfigError(f"{option}=base needs the policy model; pass a model folder instead")
        if not hasattr(policy, "disable_adapter"):
            raise ConfigError(f"{option}=base needs a LoRA policy (use_lora=true): with full fine-tuning the "
                              f"weights being trained are the only copy, so the judge would drift with the policy. "
                              f"Pass a model folder as {option}")
        return LLMJudge(policy, tokenizer, mode, adapter_off=True, template=template, batch_rows=batch_rows)
    try:
        model, tok = load_for_inference(judge_model, load_in_4bit=load_in_4bit, device=device)
    except ModelError as e:
        raise ModelError(f"{option}={judge_model}: {e}") from None
    return LLMJudge(model, tok, mode, template=template, batch_rows=batch_rows)
