"""Multi-IF (He et al. 2024, arXiv 2410.15553): multi-turn, multilingual instruction following, scored by rule.

Each conversation has up to three user turns; each turn adds IFEval-style constraints and the turn is checked
against the whole list so far (the file stores the accumulated list per turn). Turn t is prompted with the earlier
user turns and the model's OWN earlier responses; a conversation without a turn 3 stops after turn 2.

    from minirlvr.evaluation import multiif
    convs = multiif.read_multiif("multiIF_20241018.csv")           # [Conversation]
    responses = [multiif.run_conversation(c, respond) for c in convs]  # respond(messages) -> str
    # or, batched turn by turn: responses = multiif.run_all(convs, respond_batch)
    scores = [multiif.score_conversation(c, r) for c, r in zip(convs, responses)]
    m = multiif.metrics(convs, scores)                             # per turn and language, and the turn average
    print(multiif.format_table(m))

The official scorer is facebookresearch/Multi-IF's `ifeval.py` and `metrics.py` (evalscope ships the same code);
this module is written from its documented behaviour, not copied. The checks are the kit's IFEval verifiers
(minirlvr.verifiers) except where Multi-IF changed them:
- length_constraints:number_words and number_sentences count by the detected language (multiif_text.py);
- startend:quotation also accepts “…” and 「…」;
- quirks of the official kwargs handling, which draws a random value where the data has none usable: a `letter`
  that is not one ASCII letter (the English file has "#") and an empty keyword list, keyword or forbidden-word
  list are replaced here by a draw from a generator seeded by the conversation key and the instruction's place,
  so a score is a function of the responses. The official draw picks from its own 1,500-word list; ours from the
  kit's word list, so those instances agree with it only by chance, as two official runs do.
Everything else that the kit's verifiers do differently from Google's IFEval reference (literal keywords, linear
scans, the Punkt-like sentence splitter) carries over; see minirlvr/verifiers/ifeval.py. One more difference:
an empty or whitespace-only response follows no instruction here, strict or loose; the official strict check
runs the verifiers on whitespace-only text (where, e.g., "no commas" passes). And a malformed row is an error
naming the file, line and field, where the official code skips a turn whose instruction list is not JSON.

Metrics, as the official metrics.py computes them for each turn and each language (plus all languages): prompt
level (all of a turn's instructions followed) and instruction level, strict and loose, and "overall", the mean of
those four. The table adds the mean over turns 1-3. Deliberately not here: generation (the caller's `respond`)
and the bootstrap confidence intervals of the official code.
"""

import csv
import json
import random
import string
from dataclasses import dataclass

from minirlvr import verifiers
from minirlvr.data import DataError
from minirlvr.verifiers.ifeval import WORDS, compare

from . import multiif_text

TURNS = (1, 2, 3)
ALL = "all languages"
METRICS = ("prompt_strict", "instruction_strict", "prompt_loose", "instruction_loose")
# The instruction ids of Multi-IF's scorer: IFEval's 25.
INSTRUCTION_IDS = frozenset(verifiers.ids("ifeval"))


class MultiIFError(DataError):
    """A malformed benchmark file (the message names file, line and field), or a bad response."""


@dataclass(frozen=True)
class Turn:
    prompt: str  # the user message of this turn
    instruction_id_list: tuple  # every constraint in force at this turn (earlier turns' included)
    kwargs: tuple  # one dict per id, validated, with the seeded quirk substitutions made


@dataclass(frozen=True)
class Conversation:
    key: str
    language: str  # the file's `language` column ("English", "Chinese", ...)
    turns: tuple  # 1 to 3 Turns
    where: str = ""  # "file, line N", for messages


@dataclass(frozen=True)
class TurnScore:
    strict: tuple  # one verdict per instruction of the turn
    loose: tuple

    @property
    def prompt_strict(self):
        return all(self.strict)

    @property
    def prompt_loose(self):
        return all(self.loose)


# --- reading the benchmark -------------------------------------------------------------------------


def _quirks(iid, kwargs, rng):
    """The official code's random substitutions, drawn from `rng` (seeded per instruction) instead."""
    kw = dict(kwargs)
    if iid == "keywords:letter_frequency":
        letter = kw.get("letter")
        if not isinstance(letter, str) or len(letter) != 1 or not "a" <= letter.lower() <= "z":
            kw["letter"] = rng.choice(string.ascii_letters).lower()
    elif iid == "keywords:existence" and not kw.get("keywords"):
        kw["keywords"] = rng.sample(WORDS, 2)
    elif iid == "keywords:frequency" and not kw.get("keyword"):
        kw["keyword"] = rng.choice(WORDS)
    elif iid == "keywords:forbidden_words" and not kw.get("forbidden_words"):
        kw["forbidden_words"] = rng.sample(WORDS, 2)
    return kw


def _json_field(row, name, where):
    try:
        return json.loads(row[name])
    except (json.JSONDecodeError, TypeError) as e:
        raise MultiIFError(f"{where}, field {name}: not valid JSON ({e}): {row[name][:80]!r}") from None


def _turn(row, t, key, where):
    message = _json_field(row, f"turn_{t}_prompt", where)
    if not isinstance(message, dict) or message.get("role") != "user" or not isinstance(message.get("content"), str):
        raise MultiIFError(f"{where}, field turn_{t}_prompt: expected a JSON object with role \"user\" and a "
                           f"string content, got {row[f'turn_{t}_prompt'][:80]!r}")
    ids = _json_field(row, f"turn_{t}_instruction_id_list", where)
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise MultiIFError(f"{where}, field turn_{t}_instruction_id_list: expected a non-empty JSON list of ids")
    raw = _json_field(row, f"turn_{t}_kwargs", where)
    if not isinstance(raw, list) or len(raw) != len(ids):
        raise MultiIFError(f"{where}, field turn_{t}_kwargs: expected a JSON list of {len(ids)} kwargs (one per id)")
    kwargs = []
    for j, (iid, kw) in enumerate(zip(ids, raw)):
        field = f"turn_{t}_kwargs[{j}] ({iid})"
        if iid not in INSTRUCTION_IDS:
            raise MultiIFError(f"{where}, field turn_{t}_instruction_id_list[{j}]: unknown instruction id {iid!r}")
        if isinstance(kw, str):  # the release encodes each dict as a JSON string inside the JSON list
            try:
                kw = json.loads(kw)
            except json.JSONDecodeError as e:
                raise MultiIFError(f"{where}, field {field}: not valid JSON ({e})") from None
        if not isinstance(kw, dict):
            raise MultiIFError(f"{where}, field {field}: expected a JSON object, got {kw!r}")
        kw = _quirks(iid, kw, random.Random(f"multiif|{key}|{j}|{iid}"))
        try:
            kw = verifiers.validate_kwargs(iid, kw)
            if iid == "length_constraints:nth_paragraph_first_word" and kw["nth_paragraph"] > kw["num_paragraphs"]:
                raise verifiers.VerifierError("nth_paragraph is larger than num_paragraphs")
        except verifiers.VerifierError as e:
            raise MultiIFError(f"{where}, field {field}: {e}") from None
        kwargs.append(kw)
    return Turn(message["content"], tuple(ids), tuple(kwargs))


def _present(row, t):
    value = row.get(f"turn_{t}_prompt")
    return value is not None and value.strip() not in ("", "None")


def read_multiif(path):
    """The conversations of a Multi-IF CSV file (columns `key`, `language`, `turn_{1,2,3}_prompt`,
    `turn_t_instruction_id_list`, `turn_t_kwargs`), in file order. A turn whose prompt is empty or "None" ends
    the conversation. Errors name the file, the line where the row starts, and the field."""
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise MultiIFError(f"{path}: empty file") from None
        need = ["key", "language"] + [f"turn_1_{c}" for c in ("prompt", "instruction_id_list", "kwargs")]
        missing = [c for c in need if c not in header]
        if missing:
            raise MultiIFError(f"{path}, line 1: missing column(s) {', '.join(missing)}")
        while True:
            line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                raise MultiIFError(f"{path}, line {line}: {e}") from None
            if not any(c.strip() for c in cells):
                continue
            where = f"{path}, line {line}"
            if len(cells) != len(header):
                raise MultiIFError(f"{where}: {len(cells)} fields, the header has {len(header)}")
            row = dict(zip(header, cells))
            if not _present(row, 1):
                raise MultiIFError(f"{where}, field turn_1_prompt: empty")
            count = 1
            while count < len(TURNS) and _present(row, count + 1):
                count += 1
            for t in TURNS[count:]:
                if _present(row, t):
                    raise MultiIFError(f"{where}, field turn_{t}_prompt: present after an empty turn")
                for c in (f"turn_{t}_instruction_id_list", f"turn_{t}_kwargs"):
                    if c in row and row[c].strip():
                        raise MultiIFError(f"{where}, field {c}: given for a turn without a prompt")
            for c in ("key", "language"):
                if not row[c].strip():
                    raise MultiIFError(f"{where}, field {c}: empty")
            turns = tuple(_turn(row, t, row["key"], where) for t in TURNS[:count])
            out.append(Conversation(row["key"], row["language"], turns, where))
    return out


# --- running the turns -----------------------------------------------------------------------------


def _checked(response, conv, t):
    if not isinstance(response, str):
        raise MultiIFError(f"conversation {conv.key} turn {t}: the response must be a string, got "
                           f"{type(response).__name__}")
    return response


def run_conversation(conv, respond):
    """The model's responses to each turn of `conv`, in order. `respond(messages) -> str` gets a chat: for turn t,
    the user messages of turns 1..t with the model's own responses to turns 1..t-1 between them."""
    messages, responses = [], []
    for t, turn in enumerate(conv.turns, 1):
        messages.append({"role": "user", "content": turn.prompt})
        response = _checked(respond([dict(m) for m in messages]), conv, t)
        responses.append(response)
        messages.append({"role": "assistant", "content": response})
    return responses


def run_all(conversations, respond_batch):
    """run_conversation for many conversations, one turn at a time across all of them, for a batched model:
    `respond_batch([messages, ...]) -> [str, ...]`, one call per turn with every conversation that has it."""
    chats = [[] for _ in conversations]
    responses = [[] for _ in conversations]
    for t in TURNS:
        live = [i for i, c in enumerate(conversations) if len(c.turns) >= t]
        if not live:
            break
        for i in live:
            chats[i].append({"role": "user", "content": conversations[i].turns[t - 1].prompt})
        out = respond_batch([[dict(m) for m in chats[i]] for i in live])
        if len(out) != len(live):
            raise MultiIFError(f"turn {t}: respond_batch returned {len(out)} responses for {len(live)} chats")
        for i, response in zip(live, out):
            responses[i].append(_checked(response, conversations[i], t))
            chats[i].append({"role": "assistant", "content": response})
    return responses


# --- scoring ---------------------------------------------------------------------------------------


def _quotation(text):
    text = text.strip()
    return len(text) > 1 and (text[0], text[-1]) in (('"', '"'), ("\u201c", "\u201d"), ("\u300c", "\u300d"))


def check(instruction_id, response, kwargs):
    """Does `response` (as is: the strict check) follow the instruction, as Multi-IF's scorer decides it?"""
    if instruction_id == "length_constraints:number_words":
        n = kwargs["num_words"]
        return compare(multiif_text.count_words(response, stop_at=n), kwargs["relation"], n)
    if instruction_id == "length_constraints:number_sentences":
        n = kwargs["num_sentences"]
        return compare(multiif_text.count_sentences(response, stop_at=n), kwargs["relation"], n)
    if instruction_id == "startend:quotation":
        return _quotation(response)
    return verifiers.check(instruction_id, response, kwargs)


def score_turn(turn, response):
    """Strict and loose verdicts of `response` on every instruction of `turn`. Loose passes if any of IFEval's 8
    variants (first/last line dropped, '*' removed) passes; empty variants never pass."""
    if not isinstance(response, str):
        raise MultiIFError(f"the response must be a string, got {type(response).__name__}")
    variants = [v for v in dict.fromkeys(verifiers.loose_variants(response)) if v.strip()]
    strict, loose = [], []
    for iid, kw in zip(turn.instruction_id_list, turn.kwargs):
        s = bool(response.strip()) and check(iid, response, kw)
        strict.append(s)
        loose.append(s or any(check(iid, v, kw) for v in variants if v != response))
    return TurnScore(tuple(strict), tuple(loose))


def score_conversation(conv, responses):
    """One TurnScore per turn that has a response (responses[t-1] answers turn t)."""
    if len(responses) > len(conv.turns):
        raise MultiIFError(f"conversation {conv.key}: {len(responses)} responses for {len(conv.turns)} turns")
    return [score_turn(turn, r) for turn, r in zip(conv.turns, responses)]


def _rates(scores):
    n_inst = sum(len(s.strict) for s in scores)
    out = {"prompts": len(scores),
           "prompt_strict": sum(s.prompt_strict for s in scores) / len(scores),
           "instruction_strict": sum(map(sum, (s.strict for s in scores))) / n_inst,
           "prompt_loose": sum(s.prompt_loose for s in scores) / len(scores),
           "instruction_loose": sum(map(sum, (s.loose for s in scores))) / n_inst}
    out["overall"] = sum(out[k] for k in METRICS) / len(METRICS)
    return out


def metrics(conversations, scores):
    """{"turns": {t: {language: rates}}, "average": {language: rates}} where rates holds the four IFEval metrics,
    "overall" (their mean, the official headline) and "prompts" (how many conversations reached turn t), for each
    language of the file and ALL; "average" is the mean over the turns that were scored."""
    if len(scores) != len(conversations):
        raise MultiIFError(f"{len(scores)} scored conversations for {len(conversations)} conversations")
    languages = [ALL] + list(dict.fromkeys(c.language for c in conversations))
    turns = {}
    for t in TURNS:
        by_lang = {}
        for lang in languages:
            got = [s[t - 1] for c, s in zip(conversations, scores) if len(s) >= t and lang in (ALL, c.language)]
            if got:
                by_lang[lang] = _rates(got)
        if by_lang:
            turns[t] = by_lang
    average = {}
    for lang in languages:
        per_turn = [turns[t][lang] for t in turns if lang in turns[t]]
        if per_turn:
            average[lang] = {k: sum(r[k] for r in per_turn) / len(per_turn) for k in METRICS + ("overall",)}
            average[lang]["turns"] = len(per_turn)
    return {"turns": turns, "average": average}


def format_table(m, metric="overall"):
    """Markdown: one row per language (all languages first), the chosen metric in % at turns 1-3 and their mean."""
    turns = sorted(m["turns"])
    head = "| language | " + " | ".join(f"turn {t}" for t in turns) + " | average |"
    lines = [f"Multi-IF, {metric.replace('_', ' ')} (%)", "", head, "|---" * (len(turns) + 2) + "|"]
    for lang, avg in m["average"].items():
        cells = [f"{100 * m['turns'][t][lang][metric]:.2f}" if lang in m["turns"][t] else "-" for t in turns]
        lines.append(f"| {lang} | " + " | ".join(cells) + f" | {100 * avg[metric]:.2f} |")
    return "\n".join(lines)
