"""The embedded synthetic instruction world: prompts, constraints, a response grammar and the hidden truth.

A prompt is a task about a topic ("Tell me about tea.") plus constraints:
  - hard ones: IFEval instruction ids, rendered in English by `verifiers.describe` and checked by
    `verifiers.check`, exactly as for real data;
  - soft ones: a small catalogue (tone, focus on an aspect, audience) whose English text goes into the prompt
    and into `soft_constraints`; the world alone knows their truth, from hidden rules over a sentiment and
    aspect lexicon (`soft_truth`). A reward model only ever sees the text: it must learn the rule (judge.py).
The response grammar (`write_response`) follows each constraint only with probability `p_follow` and otherwise
writes what it would write without it, so a model trained on it satisfies constraints part of the time (GRPO
only improves what the policy already does sometimes). Responses are short (5 to 40 words) so a ~1M-parameter
model on a CPU can produce them.

The kwargs of hard constraints come from small world pools instead of `verifiers.sample_kwargs`: IFEval's
ranges (e.g. "at least 300 words") are out of reach of a tiny model. Each pool has a "seen" part (SFT, RL and
in-distribution evaluation) and an "unseen" part (SFT and evaluation only), and the types in UNSEEN_HARD
never appear in RL prompts: that is the miniature's generalization question.

Deliberately not here: tokenization (tokenizer.py), models, rewards.
"""

import itertools
import random
import re
from dataclasses import dataclass

from minirlvr import verifiers

TOPICS = ["tea", "bikes", "rivers", "gardens", "trains", "bread", "music", "winter", "cats", "markets",
          "islands", "lamps", "bridges", "forests", "coffee", "boats", "rain", "books"]
TASKS = ["Write a short note about {t}.", "Tell me about {t}.", "Describe {t} in a few lines.",
         "Give me a quick thought on {t}.", "Say something about {t}."]

# Hard constraints: RL trains on TRAIN_HARD with the "seen" kwargs values; UNSEEN_HARD is evaluation-only.
TRAIN_HARD = ["change_case:english_lowercase", "keywords:existence", "detectable_format:number_bullet_lists",
              "startend:end_checker", "punctuation:no_comma", "length_constraints:number_words"]
UNSEEN_HARD = ["detectable_format:title", "startend:quotation", "keywords:forbidden_words"]
KWARG_POOLS = {  # id -> (seen values, unseen values); a value is the kwargs dict
    "keywords:existence": ([{"keywords": [w]} for w in ["apple", "stone", "candle", "window", "silver", "pocket"]],
                           [{"keywords": [w]} for w in ["pepper", "feather", "wagon"]]),
    "detectable_format:number_bullet_lists": ([{"num_bullets": 2}, {"num_bullets": 3}], [{"num_bullets": 4}]),
    "startend:end_checker": ([{"end_phrase": p} for p in ["That is all.", "See you soon.", "Thanks for reading."]],
                             [{"end_phrase": "Have a nice day."}]),
    "length_constraints:number_words": (
        [{"relation": "less than", "num_words": 12}, {"relation": "less than", "num_words": 20},
         {"relation": "at least", "num_words": 20}],
        [{"relation": "less than", "num_words": 16}, {"relation": "at least", "num_words": 25}]),
}

# The grammar's lexicon. Tone and aspect words are what the hidden soft rules look at.
TONE_WORDS = {"positive": ["good", "lovely", "great", "pleasant", "bright", "kind", "wonderful"],
              "negative": ["bad", "awful", "poor", "gloomy", "harsh", "dull", "terrible"],
              "neutral": ["plain", "simple", "usual", "common", "quiet", "ordinary"]}
ASPECT_TAILS = {"cost": ["for the price", "for little money", "and quite cheap", "at a low cost"],
                "history": ["in the past", "since ancient times", "for a century", "in its long history"],
                "health": ["for your health", "for the body", "for good sleep"],
                "safety": ["for your safety", "with little risk", "despite the danger"],
                None: ["to many people", "every day", "in town", "at home", "in every season", "for everybody"]}
ASPECT_WORDS = {"cost": {"price", "money", "cheap", "cost"}, "history": {"past", "ancient", "century", "history"},
                "health": {"health", "body", "sleep"}, "safety": {"safety", "risk", "danger"}}
SUBJECT_VERBS = ["is", "feels", "seems", "looks"]
ADVERBS = ["", "", "very ", "quite ", "so ", "remarkably ", "especially "]
OPENERS = ["Honestly", "Today", "In short", "Of course", "As always"]
LONG_WORD = re.compile(r"\b[A-Za-z]{8,}\b")  # the children rule: no word longer than 7 letters

# Soft constraints: (kind, value) -> the English the prompt shows. The world knows their truth (soft_truth).
SOFT_TEXT = {("tone", "positive"): "Use a warm, positive tone.",
             ("tone", "negative"): "Use a critical, negative tone.",
             ("focus", "cost"): "Focus on the cost.", ("focus", "history"): "Focus on the history.",
             ("focus", "health"): "Focus on health.", ("focus", "safety"): "Focus on safety.",
             ("audience", "children"): "Write it for young children, with short simple words."}
SOFT_SPECS = list(SOFT_TEXT)


def words_of(text):
    return re.findall(r"[a-z]+", text.lower())


def soft_truth(spec, response):
    """Hidden rule: is the soft constraint (kind, value) satisfied by the response?"""
    kind, value = spec
    words = set(words_of(response))
    if kind == "tone":
        other = "negative" if value == "positive" else "positive"
        return bool(words & set(TONE_WORDS[value])) and not words & set(TONE_WORDS[other])
    if kind == "focus":
        others = set().union(*(w for a, w in ASPECT_WORDS.items() if a != value))
        return bool(words & ASPECT_WORDS[value]) and not words & others
    if kind == "audience":
        return LONG_WORD.search(response) is None
    raise ValueError(f"unknown soft constraint kind {kind!r}")


def soft_evidence(spec, response, shown=3):
    """The hidden rule's reasons in words: the lexicon words it looked at ("positive words: good; negative words:
    none"), at most `shown` of each kind, in order of appearance. What the miniature's LM judge is taught to write
    before its verdict (lm_judge.py): the verdict follows from it by the rule in soft_truth."""
    kind, value = spec
    words = words_of(response)

    def listed(found):  # the first `shown` distinct words, in order
        return ", ".join(list(dict.fromkeys(found))[:shown]) or "none"

    def found(lexicon):
        return listed(w for w in words if w in lexicon)

    if kind == "tone":
        other = "negative" if value == "positive" else "positive"
        return f"{value} words: {found(set(TONE_WORDS[value]))}; {other} words: {found(set(TONE_WORDS[other]))}"
    if kind == "focus":
        others = set().union(*(w for a, w in ASPECT_WORDS.items() if a != value))
        return f"{value} words: {found(ASPECT_WORDS[value])}; other topics: {found(others)}"
    if kind == "audience":
        return f"long words: {listed(w.lower() for w in LONG_WORD.findall(response))}"
    raise ValueError(f"unknown soft constraint kind {kind!r}")


def soft_specs_of(record):
    """The (kind, value) specs a world record carries (its hidden field `world_soft`)."""
    return [tuple(s) for s in record.get("world_soft", [])]


# ---------------------------------------------------------------------------------------------- prompts
def _hard_kwargs(iid, rng, unseen):
    if iid == "keywords:forbidden_words":
        return None  # filled with the prompt's topic, see make_record
    if iid in KWARG_POOLS:
        seen_vals, unseen_vals = KWARG_POOLS[iid]
        return dict(rng.choice(unseen_vals if unseen else seen_vals))
    return verifiers.sample_kwargs(iid, rng)


def make_record(rng, key, hard_ids, soft_specs, unseen_kwargs=False, source="world"):
    """A record (the kit's format) for a random topic and task with the given constraints.

    `unseen_kwargs`: draw kwargs from the unseen part of the pools. The record keeps the world's specs of its
    soft constraints in `world_soft` (hidden from models: only the prompt text is tokenized)."""
    topic = rng.choice(TOPICS)
    kwargs = []
    for iid in hard_ids:
        kw = _hard_kwargs(iid, rng, unseen_kwargs)
        kwargs.append({"forbidden_words": [topic]} if kw is None else kw)
    parts = [verifiers.describe(i, kw) for i, kw in zip(hard_ids, kwargs)] + [SOFT_TEXT[s] for s in soft_specs]
    rng.shuffle(parts)
    prompt = " ".join([rng.choice(TASKS).format(t=topic)] + parts)
    return {"key": key, "prompt": prompt, "instruction_id_list": list(hard_ids), "kwargs": kwargs,
            "soft_constraints": [SOFT_TEXT[s] for s in soft_specs], "world_soft": [list(s) for s in soft_specs],
            "topic": topic, "source": source}


def _pick_hard(rng, pool, n):
    """n distinct ids from pool, none conflicting with another (verifiers.conflicts)."""
    ids = []
    for iid in rng.sample(pool, len(pool)):
        if len(ids) == n:
            break
        if not any(iid in verifiers.conflicts(j) or j in verifiers.conflicts(iid) for j in ids):
            ids.append(iid)
    return ids


def _pick_soft(rng, n):
    """n soft specs drawn independently: two may contradict (positive and negative tone), as in real data.
    The critic filter of refine.py is what removes such prompts."""
    specs = []
    for _ in range(n):
        s = rng.choice(SOFT_SPECS)
        if s not in specs:
            specs.append(s)
    return specs


@dataclass(frozen=True)
class Mix:
    """How many constraints the prompts of one data set carry: weights over counts 0, 1, 2, ..."""
    hard: tuple = (0.0, 1.0)
    soft: tuple = (1.0,)
    hard_pool: str = "train"      # "train", "all" or "unseen"
    unseen_kwargs: float = 0.0    # probability of drawing kwargs from the unseen pools


MIXES = {
    # SFT corpus: every type and kwargs value, so that RL has something to improve and evaluation can ask.
    "sft": Mix(hard=(0.1, 0.4, 0.35, 0.15), soft=(0.55, 0.33, 0.12), hard_pool="all", unseen_kwargs=0.25),
    "hard": Mix(hard=(0.0, 0.45, 0.4, 0.15), soft=(1.0,)),
    "soft": Mix(hard=(1.0,), soft=(0.0, 0.6, 0.4)),
    "mixed": Mix(hard=(0.0, 0.6, 0.4), soft=(0.0, 0.6, 0.4)),
    # evaluation sets: in-distribution hard, one clean soft constraint, one unseen type or kwargs value
    "eval_hard": Mix(hard=(0.0, 0.45, 0.4, 0.15), soft=(1.0,)),
    "eval_soft": Mix(hard=(1.0,), soft=(0.0, 1.0)),
    "eval_unseen": Mix(hard=(0.0, 1.0), soft=(1.0,), hard_pool="unseen", unseen_kwargs=1.0),
}


def _count(rng, weights):
    return rng.choices(range(len(weights)), weights=weights)[0]


def sample_records(kind, n, seed):
    """n records of one data set kind (a key of MIXES); the same (kind, n, seed) gives the same records, and the
    first n of a longer draw."""
    return list(itertools.islice(record_stream(kind, seed), n))


def record_stream(kind, seed):
    """The records of one data set kind, one after another, without end (sample_records takes the first n)."""
    mix = MIXES[kind]
    rng = random.Random(f"{kind}:{seed}")
    for key in itertools.count():
        if mix.hard_pool == "unseen":
            # one held-out constraint: an unseen type, or a seen type with an unseen kwargs value
            held = UNSEEN_HARD + list(KWARG_POOLS)
            hard_ids, unseen_kw = [rng.choice(held)], True
        else:
            pool = TRAIN_HARD + UNSEEN_HARD if mix.hard_pool == "all" else TRAIN_HARD
            hard_ids = _pick_hard(rng, pool, _count(rng, mix.hard))
            unseen_kw = rng.random() < mix.unseen_kwargs
        soft = _pick_soft(rng, _count(rng, mix.soft))
        yield make_record(rng, key, hard_ids, soft, unseen_kwargs=unseen_kw, source=f"world:{kind}")


# ---------------------------------------------------------------------------------------------- responses
def _sentence(rng, topic, tone, aspect, allow_long, allow_comma, subject=None):
    def pick(options):
        short = [o for o in options if allow_long or not LONG_WORD.search(o)]
        return rng.choice(short or options)
    subj = subject or pick([topic.capitalize(), "It", "This"])
    s = f"{subj} {rng.choice(SUBJECT_VERBS)} {pick(ADVERBS)}{pick(TONE_WORDS[tone])} {pick(ASPECT_TAILS[aspect])}."
    if allow_comma and rng.random() < 0.5:
        s = f"{rng.choice(OPENERS)}, {s[0].lower()}{s[1:]}"
    return s


def draft(record, rng, follow):
    """One candidate response. `follow[c]` says whether constraint c (an id or a soft spec) is followed."""
    topic = record.get("topic") or rng.choice(TOPICS)
    hard = dict(zip(record.get("instruction_id_list", []), record.get("kwargs", [])))
    soft = soft_specs_of(record)
    on = {c for c, f in follow.items() if f}

    tones = [v for k, v in soft if k == "tone" and (k, v) in on]
    aspects = [v for k, v in soft if k == "focus" and (k, v) in on]
    allow_long = ("audience", "children") not in on and rng.random() < 0.6
    allow_comma = "punctuation:no_comma" not in on and rng.random() < 0.7
    avoid_topic = "keywords:forbidden_words" in on

    n = rng.choice([1, 2, 2, 3, 3, 4])
    if "length_constraints:number_words" in on:
        kw = hard["length_constraints:number_words"]
        n = max(1, kw["num_words"] // 8 - 1) if kw["relation"] == "less than" else kw["num_words"] // 6 + 1
    bullets = None
    if "detectable_format:number_bullet_lists" in on:
        bullets = hard["detectable_format:number_bullet_lists"]["num_bullets"]
        n = bullets
    elif "detectable_format:number_bullet_lists" in hard:
        bullets = rng.choice([None, None, n + 1])
    elif rng.random() < 0.1:
        bullets = n

    lines = []
    for i in range(n):
        tone = tones[0] if tones else rng.choice(["positive", "negative", "neutral"])
        aspect = aspects[0] if aspects and (i == 0 or rng.random() < 0.5) else (
            None if aspects else rng.choice([None, None, "cost", "history", "health", "safety"]))
        subject = rng.choice(["It", "This"]) if avoid_topic else (topic.capitalize() if i == 0 else None)
        lines.append(_sentence(rng, topic, tone, aspect, allow_long, allow_comma, subject))
    if "keywords:existence" in on:
        for w in hard["keywords:existence"]["keywords"]:
            j = rng.randrange(len(lines))
            lines[j] = lines[j][:-1] + f" like a {w}."
    text = "\n".join("* " + s for s in lines) if bullets else " ".join(lines)
    if "detectable_format:title" in on:
        text = f"<<{topic.capitalize()} notes>>\n{text}"
    if "startend:end_checker" in on:
        text += ("\n" if bullets else " ") + hard["startend:end_checker"]["end_phrase"]
    if "change_case:english_lowercase" in on:
        text = text.lower()
    if "startend:quotation" in on:
        text = f'"{text}"'
    return text


def constraints_of(record):
    """Every constraint of a record: hard ids, then soft specs."""
    return list(record.get("instruction_id_list", [])) + soft_specs_of(record)


def satisfied(record, response, constraint):
    """World truth for one constraint (an IFEval id or a soft spec)."""
    if isinstance(constraint, tuple):
        return soft_truth(constraint, response)
    kw = record["kwargs"][record["instruction_id_list"].index(constraint)]
    return verifiers.check(constraint, response, kw, prompt=record.get("prompt"))


def write_response(record, rng, p_follow=0.5, tries=12):
    """A response that follows each constraint with probability p_follow (rejection-sampled until the followed
    ones really hold, or `tries` drafts were made: contradictory constraints can't all hold)."""
    follow = {c: rng.random() < p_follow for c in constraints_of(record)}
    text = draft(record, rng, follow)
    for _ in range(tries - 1):
        if all(satisfied(record, text, c) for c, f in follow.items() if f):
            break
        text = draft(record, rng, follow)
    return text


def feasible(record, rng=None, tries=24, soft_check=None):
    """Can the world's writer satisfy every constraint of the record at once, as far as the hard verifiers and
    `soft_check(spec_text, response) -> bool` (default: the hidden truth) can tell? (refine.py's critic)"""
    rng = rng or random.Random(str(record.get("key")))
    follow = {c: True for c in constraints_of(record)}
    for _ in range(tries):
        text = draft(record, rng, follow)
        hard_ok = all(satisfied(record, text, c) for c in record.get("instruction_id_list", []))
        soft_ok = all(soft_check(SOFT_TEXT[s], text) if soft_check else soft_truth(s, text)
                      for s in soft_specs_of(record))
        if hard_ok and soft_ok:
            return True
    return False


def truth(record, response):
    """Per-constraint truth of a response: {"hard": [bool per id], "soft": [bool per soft spec]}."""
    return {"hard": [satisfied(record, response, c) for c in record.get("instruction_id_list", [])],
            "soft": [soft_truth(s, response) for s in soft_specs_of(record)]}
