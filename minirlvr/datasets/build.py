"""Training data for real models: the paper's hard-only / soft-only / mixed splits built from seed tasks, and a
held-out evaluation split with constraint types and kwargs values training never shows.

    hard_only.jsonl  N training seed tasks, each with 1..max_hard hard constraints (verifier ids, worded by
                     verifiers.describe, kwargs from verifiers.sample_kwargs, no pair verifiers.conflicts forbids)
    soft_only.jsonl  the same N tasks, each with 1..max_soft soft constraints (soft_catalogue.py, one per kind)
    mixed.jsonl      the same N tasks; record i carries hard_only[i]'s hard and soft_only[i]'s soft constraints,
                     so the three arms differ only in which constraints they see
    heldout.jsonl    seed tasks no training split uses, hard constraints only, in three groups (i % 3): all seen;
                     one of an id held out of training ("unseen": "type"); one seen id with a kwargs value held
                     out of training ("unseen": "kwargs"). The field "unseen" runs parallel to
                     instruction_id_list (null for a seen constraint), like the miniature's "unseen" split.
    manifest.json    seed, counts, the seed-file lines of each split, the held-out ids and kwargs values, and
                     how often each id occurs per split

Held-out kwargs values: for each (id, kwarg) whose sampler draws at least 3 distinct values (list kwargs count
their elements), a seeded fifth of the values it was seen to draw in 200 probes is held out; a training kwargs
dict never contains one, an "unseen kwargs" record always does. Relations and two-valued kwargs are never held
out. Kwargs ranges are sample_kwargs's own, uncapped (e.g. 10 to 100 words, 1 to 4 bullets).

Deterministic for a seed: every record draws from its own random.Random(f"...:{seed}:{index}"). Besides the
conflict table, the builder rejects one contradiction the table cannot see (a forbidden word that another
constraint of the prompt requires); anything else infeasible (a 10-word answer with 4 sections) is the
critic's to find. A multi-line instruction (bullets, sections) goes last, after a newline; all other parts are
joined by single spaces, so refine.one_soft can cut a soft constraint out of the prompt text.

This file does not read public datasets (datasets.py) or refine data (refine_cli.py).
"""

import os
import random
from collections import Counter
from importlib import resources

from minirlvr import verifiers
from minirlvr.data import DataError, iter_jsonl, to_json, validate_record, write_atomic, write_jsonl
from minirlvr.datasets.soft_catalogue import SOFT_CATALOGUE

# The hard constraints drawn by default: the ids registered when this was written (IFEval's 25 + the 10
# VerInstruct-style extras). A fixed list, so that ids registered later (IFBench) change nothing unless asked.
DEFAULT_HARD_IDS = [
    "keywords:existence", "keywords:frequency", "keywords:forbidden_words", "keywords:letter_frequency",
    "language:response_language", "change_case:capital_word_frequency", "change_case:english_capital",
    "change_case:english_lowercase", "length_constraints:number_sentences", "length_constraints:number_paragraphs",
    "length_constraints:number_words", "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders", "detectable_content:postscript",
    "detectable_format:number_bullet_lists", "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections", "detectable_format:multiple_sections",
    "detectable_format:json_format", "detectable_format:title", "combination:two_responses",
    "combination:repeat_prompt", "startend:end_checker", "startend:quotation", "punctuation:no_comma",
    "length_constraints:word_count_range", "length_constraints:max_words_per_sentence",
    "length_constraints:max_sentences_per_paragraph", "length_constraints:min_word_length",
    "punctuation:banned_marks", "startend:first_word", "startend:last_word", "detectable_format:marked_sections",
    "detectable_format:json_keys", "detectable_format:number_lines",
]
# Types only the held-out split uses (like the miniature's UNSEEN_HARD): a mix of format, case-free content,
# start/end and length constraints, none of them conflicting with everything.
DEFAULT_HELDOUT_IDS = ["detectable_format:title", "startend:quotation", "keywords:letter_frequency",
                       "detectable_content:postscript", "length_constraints:max_words_per_sentence"]
HELDOUT_VALUE_FRACTION = 0.2
PROBES = 200
REPEAT = "combination:repeat_prompt"  # its kwarg is the prompt text before it: filled in when the prompt is built
SPLITS = ("hard_only", "soft_only", "mixed")


def default_seeds_path():
    """The seed tasks shipped with the kit (335 everyday tasks written for it)."""
    return str(resources.files("minirlvr") / "assets" / "seed_tasks.jsonl")


def read_seed_tasks(path):
    """[(line, task text, messages or None)] of a JSONL file with "prompt" or "messages" per line, duplicates
    removed (first kept). Errors name file:line:field; a file with no usable task is an error."""
    tasks, seen = [], set()
    for lineno, row in iter_jsonl(path):
        where = f"{path}:{lineno}"
        validate_record(row, where)
        if "prompt" in row:
            text, messages = row["prompt"], None
        else:
            users = [m for m in row["messages"] if m["role"] == "user"]
            if not users or not isinstance(users[-1]["content"], str):
                raise DataError(f"{where}: field 'messages' has no user message with text content")
            text, messages = users[-1]["content"], row["messages"]
        field = "prompt" if messages is None else "messages"
        if not text.strip():
            raise DataError(f"{where}: field '{field}' is empty")
        if text.strip() not in seen:
            seen.add(text.strip())
            tasks.append((lineno, text.strip(), messages))
    if not tasks:
        raise DataError(f"{path}: no usable seed task (expected one JSON object with 'prompt' or 'messages' per line)")
    return tasks


def check_ids(ids, what):
    unknown = [i for i in ids if i not in verifiers.ids()]
    if unknown:
        raise DataError(f"{what}: unknown instruction ids {unknown} (registered: see verifiers.ids())")
    if len(set(ids)) != len(ids):
        raise DataError(f"{what}: an id is listed twice")


# ---------------------------------------------------------------------------------------------- kwargs values
def _values(value):
    return value if isinstance(value, list) else [value]


def heldout_values(ids, seed, fraction=HELDOUT_VALUE_FRACTION, probes=PROBES):
    """{id: {kwarg: sorted held-out values}}: a seeded `fraction` of the values each kwarg was seen to take in
    `probes` draws of sample_kwargs, for kwargs that took at least 3 distinct values."""
    rng = random.Random(f"heldout-values:{seed}")
    out = {}
    for iid in sorted(ids):
        probe = random.Random(f"probe:{iid}")
        seen = {}
        for _ in range(probes):
            for field, value in verifiers.sample_kwargs(iid, probe, prompt="probe").items():
                seen.setdefault(field, set()).update(_values(value))
        for field in sorted(seen):
            values = sorted(seen[field], key=lambda v: (type(v).__name__, v))
            if len(values) >= 3:
                k = max(1, round(fraction * len(values)))
                out.setdefault(iid, {})[field] = sorted(rng.sample(values, k), key=lambda v: (type(v).__name__, v))
    return out


def is_heldout(iid, kwargs, held):
    """Does this kwargs dict use a value held out of training?"""
    fields = held.get(iid, {})
    return any(v in fields.get(field, ()) for field, value in kwargs.items() for v in _values(value))


def draw_kwargs(iid, rng, held, unseen, task, tries=500):
    """kwargs for iid without (unseen=False) or with (unseen=True) a held-out value."""
    for _ in range(tries):
        kw = verifiers.sample_kwargs(iid, rng, prompt=task)
        if is_heldout(iid, kw, held) == unseen:
            return kw
    raise DataError(f"{iid}: no kwargs {'with' if unseen else 'without'} a held-out value in {tries} draws")


def _required_words(iid, kw):
    """Words a constraint asks the response to contain (a forbidden one among them would contradict it)."""
    if iid == "keywords:frequency" and kw["relation"] == "less than":
        return set()
    return {w.lower() for field in ("keywords", "keyword", "first_word", "last_word", "keys") if field in kw
            for w in _values(kw[field])}


def _contradicts(ids, kwargs):
    forbidden = {w.lower() for i, kw in zip(ids, kwargs) if i == "keywords:forbidden_words"
                 for w in kw["forbidden_words"]}
    return bool(forbidden & set().union(*(_required_words(i, kw) for i, kw in zip(ids, kwargs))))


# ---------------------------------------------------------------------------------------------- records
def pick_ids(rng, pool, n, taken=()):
    """Up to n distinct ids (counting `taken`, which come first) with no pair verifiers.conflicts forbids."""
    ids = list(taken)
    for iid in rng.sample(pool, len(pool)):
        if len(ids) >= n:
            break
        if iid not in ids and not any(iid in verifiers.conflicts(j) for j in ids):
            ids.append(iid)
    return ids


def draw_hard(rng, ids, held, task, unseen=(), tries=50):
    """kwargs for ids (unseen[j] == "kwargs": with a held-out value), redrawn while they contradict each other."""
    unseen = list(unseen) or [None] * len(ids)
    for _ in range(tries):
        kwargs = [draw_kwargs(i, rng, held, u == "kwargs", task) for i, u in zip(ids, unseen)]
        if not _contradicts(ids, kwargs):
            return kwargs
    raise DataError(f"no non-contradicting kwargs for {ids} in {tries} draws")


def pick_soft(rng, n):
    """n soft constraint texts of distinct kinds."""
    kinds = sorted({k for k, _ in SOFT_CATALOGUE})
    return [rng.choice([t for k, t in SOFT_CATALOGUE if k == kind]) for kind in rng.sample(kinds, min(n, len(kinds)))]


def assemble(task, messages, ids, kwargs, soft, rng, key, source):
    """A record: the task, then its constraints in random order (multi-line ones last, repeat_prompt at the very
    end with the text before it as its kwarg)."""
    kwargs = [dict(kw) for kw in kwargs]
    parts = [verifiers.describe(i, kw) for i, kw in zip(ids, kwargs) if i != REPEAT] + list(soft)
    rng.shuffle(parts)
    prompt = " ".join([task] + [p for p in parts if "\n" not in p]) + "".join("\n" + p for p in parts if "\n" in p)
    if REPEAT in ids:
        j = ids.index(REPEAT)
        kwargs[j] = {"prompt_to_repeat": prompt}
        prompt += "\n" + verifiers.describe(REPEAT, kwargs[j])
    rec = {"key": key}
    if messages is None:
        rec["prompt"] = prompt
    else:
        last = max(i for i, m in enumerate(messages) if m["role"] == "user")
        rec["messages"] = [dict(m, content=prompt) if i == last else dict(m) for i, m in enumerate(messages)]
    rec.update({"instruction_id_list": list(ids), "kwargs": kwargs, "soft_constraints": list(soft), "source": source})
    return rec


def training_records(tasks, n, pool, held, max_hard, max_soft, seed, seeds):
    """{split: records}: record i of every split comes from the same seed task."""
    out = {s: [] for s in SPLITS}
    for i in range(n):
        lineno, task, messages = tasks[i % len(tasks)]
        rng = random.Random(f"train:{seed}:{i}")
        ids = pick_ids(rng, pool, rng.randint(1, max_hard))
        kwargs = draw_hard(rng, ids, held, task)
        soft = pick_soft(rng, rng.randint(1, max_soft))
        src = f"{os.path.basename(seeds)}:{lineno}"
        for split, (hi, hk, st) in {"hard_only": (ids, kwargs, []), "soft_only": ([], [], soft),
                                    "mixed": (ids, kwargs, soft)}.items():
            order = random.Random(f"{split}:{seed}:{i}")
            out[split].append(assemble(task, messages, hi, hk, st, order, i, src))
    return out


def heldout_records(tasks, n, pool, heldout_ids, held, max_hard, seed, seeds):
    """Hard-only records on held-out tasks: groups seen / unseen type / unseen kwargs, in turn."""
    with_values = [i for i in pool if i in held]
    groups = ["seen"] + (["type"] if heldout_ids else []) + (["kwargs"] if with_values else [])
    records = []
    for i in range(n):
        lineno, task, messages = tasks[i % len(tasks)]
        rng = random.Random(f"heldout:{seed}:{i}")
        group = groups[i % len(groups)]
        first = [] if group == "seen" else [rng.choice(heldout_ids if group == "type" else with_values)]
        ids = pick_ids(rng, pool, rng.randint(1, max_hard), taken=first)
        unseen = [group if j == 0 and first else None for j in range(len(ids))]
        kwargs = draw_hard(rng, ids, held, task, unseen)
        rec = assemble(task, messages, ids, kwargs, [], rng, i, f"{os.path.basename(seeds)}:{lineno}")
        rec["unseen"] = unseen
        records.append(rec)
    return records


def build(seeds=None, n=None, max_hard=3, max_soft=2, seed=0, hard_ids=None, heldout_ids=None,
          heldout_fraction=0.1, heldout_n=None):
    """({file name: records}, manifest) for one seed; writes nothing."""
    shown = seeds or "minirlvr/assets/seed_tasks.jsonl"  # the manifest does not depend on where the kit is installed
    seeds = seeds or default_seeds_path()
    hard_ids = list(DEFAULT_HARD_IDS if hard_ids is None else hard_ids)
    heldout_ids = list(DEFAULT_HELDOUT_IDS if heldout_ids is None else heldout_ids)
    check_ids(hard_ids, "hard ids")
    check_ids(heldout_ids, "held-out ids")
    if max_hard < 1 or max_soft < 1:
        raise DataError(f"--max-hard and --max-soft must be >= 1, got {max_hard} and {max_soft}")
    if not 0 < heldout_fraction < 1:
        raise DataError(f"--heldout-fraction must be strictly between 0 and 1, got {heldout_fraction}")
    pool = [i for i in hard_ids if i not in heldout_ids]
    if not pool:
        raise DataError("every hard id is held out: no id is left for training")
    tasks = read_seed_tasks(seeds)
    if len(tasks) < 2:
        raise DataError(f"{seeds}: {len(tasks)} usable seed task; at least 2 are needed (training and held-out)")
    order = list(range(len(tasks)))
    random.Random(f"tasks:{seed}").shuffle(order)
    n_held = min(len(tasks) - 1, max(1, round(heldout_fraction * len(tasks))))
    held_tasks = [tasks[j] for j in sorted(order[:n_held])]
    train_tasks = [tasks[j] for j in order[n_held:]]
    n = len(train_tasks) if n is None else n
    if n < 1:
        raise DataError(f"--n must be >= 1, got {n}")
    held = heldout_values(pool, seed)
    files = training_records(train_tasks, n, pool, held, max_hard, max_soft, seed, seeds)
    files["heldout"] = heldout_records(held_tasks, len(held_tasks) if heldout_n is None else heldout_n, pool,
                                       heldout_ids, held, max_hard, seed, seeds)
    manifest = {
        "seed": seed, "seeds": shown, "seed_tasks": len(tasks), "max_hard": max_hard, "max_soft": max_soft,
        "hard_ids": pool, "heldout_ids": heldout_ids, "heldout_kwargs": held,
        "seed_lines": {"train": sorted(t[0] for t in train_tasks), "heldout": [t[0] for t in held_tasks]},
        "splits": {name: {"records": len(recs),
                          "ids": dict(sorted(Counter(i for r in recs for i in r["instruction_id_list"]).items())),
                          "soft_constraints": sum(len(r["soft_constraints"]) for r in recs)}
                   for name, recs in files.items()},
    }
    manifest["splits"]["heldout"]["groups"] = dict(Counter(
        next((u for u in r["unseen"] if u), "seen") for r in files["heldout"]))
    return files, manifest


def write_build(out, files, manifest):
    """Every file is computed before the first is written, and each is written atomically."""
    os.makedirs(out, exist_ok=True)
    for name, records in files.items():
        write_jsonl(os.path.join(out, f"{name}.jsonl"), records)
    write_atomic(os.path.join(out, "manifest.json"), to_json(manifest, indent=1, ensure_ascii=False) + "\n")
