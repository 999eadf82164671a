"""Hard constraints beyond IFEval, of the kinds VerInstruct trains on (the paper's Table 1 lists length
ranges, per-sentence and per-paragraph limits, banned punctuation, fixed first/last words, marked
sections and JSON with given keys). Same contract as ifeval.py: check, describe, sample, conflicts.

What they deliberately do not do: no semantic judgement (that is the judge's job), and no leniency
beyond IFEval's loose mode. Words are runs of word characters, as in IFEval's word count.
"""

import functools
import re

from . import registry
from .ifeval import WORDS, parse_json, plural, quoted, strip_code_fence
from .registry import ALL, VerifierError
from .text import count_words, split_sentences

_WORD = re.compile(r"\w+")
_WORD_CHAR = re.compile(r"\w")
_LETTERS = re.compile(r"[^\W\d_]+")
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")
reg = functools.partial(registry.reg, source="extra")


def paragraphs(text):
    """Non-blank blocks separated by blank lines."""
    return [p for p in _BLANK_LINE.split(text) if p.strip()]


def word_range(iid):
    """The check of a {min_words, max_words} range (IFBench's count:word_count_range is the same)."""
    def check(r, kw, p):
        if kw["min_words"] > kw["max_words"]:
            raise VerifierError(f"{iid}: kwarg 'min_words' must not exceed 'max_words' "
                                f"({kw['min_words']} > {kw['max_words']})")
        return kw["min_words"] <= count_words(r) <= kw["max_words"]
    return check


def _word_range_sample(rng, p):
    lo = rng.choice((10, 20, 30, 50))
    return {"min_words": lo, "max_words": lo + rng.choice((10, 20, 40))}


reg("length_constraints:word_count_range", {"min_words": "count", "max_words": "count"},
    word_range("length_constraints:word_count_range"),
    lambda kw: f"Your response should contain between {kw['min_words']} and {kw['max_words']} words.",
    _word_range_sample,
    conflicts=("length_constraints:number_words",))

reg("length_constraints:max_words_per_sentence", {"max_words": "count"},
    lambda r, kw, p: all(count_words(s) <= kw["max_words"] for s in split_sentences(r)),
    lambda kw: f"No sentence in your response may be longer than {plural(kw['max_words'], 'word')}.",
    lambda rng, p: {"max_words": rng.choice((8, 10, 12, 15, 20))})

reg("length_constraints:max_sentences_per_paragraph", {"max_sentences": "count"},
    lambda r, kw, p: all(len(split_sentences(par)) <= kw["max_sentences"] for par in paragraphs(r)),
    lambda kw: f"Each paragraph of your response may contain at most {plural(kw['max_sentences'], 'sentence')}; "
               "separate paragraphs with a blank line.",
    lambda rng, p: {"max_sentences": rng.randint(1, 3)})

reg("length_constraints:min_word_length", {"min_chars": "count"},
    lambda r, kw, p: all(len(w) >= kw["min_chars"] for w in _LETTERS.findall(r)),
    lambda kw: f"Every word in your response must be at least {plural(kw['min_chars'], 'letter')} long.",
    lambda rng, p: {"min_chars": rng.randint(2, 3)})

BANNABLE = (";", ":", "!", "?", "(", ")", "&")


def _banned_marks_ok(r, kw, p):
    return not any(mark in r for mark in kw["marks"])


reg("punctuation:banned_marks", {"marks": "texts"},
    _banned_marks_ok,
    lambda kw: f"Do not use any of these punctuation marks in your response: {' '.join(kw['marks'])}",
    lambda rng, p: {"marks": sorted(rng.sample(BANNABLE, 2))},
    conflicts=("startend:end_checker",))


def _first_word(text):
    m = _WORD.search(text)
    return m.group(0).lower() if m else None


def _last_word(text):
    end = len(text)
    while end and not _WORD_CHAR.match(text, end - 1):  # a scan, not r"(\w+)\W*$", which backtracks
        end -= 1
    start = end
    while start and _WORD_CHAR.match(text, start - 1):
        start -= 1
    return text[start:end].lower() if end else None


reg("startend:first_word", {"first_word": "text"},
    lambda r, kw, p: _first_word(r) == kw["first_word"].strip().lower(),
    lambda kw: f"Start your response with the word \"{kw['first_word'].strip()}\".",
    lambda rng, p: {"first_word": rng.choice(WORDS)},
    conflicts=("length_constraints:nth_paragraph_first_word",))

reg("startend:last_word", {"last_word": "text"},
    lambda r, kw, p: _last_word(r) == kw["last_word"].strip().lower(),
    lambda kw: f"End your response with the word \"{kw['last_word'].strip()}\"; nothing but punctuation "
               "may follow it.",
    lambda rng, p: {"last_word": rng.choice(WORDS)},
    conflicts=("startend:end_checker", "detectable_content:postscript"))


def count_marked_lines(text, marker):
    return sum(1 for line in text.split("\n") if line.lstrip().startswith(marker))


reg("detectable_format:marked_sections", {"marker": "text", "num_sections": "count"},
    lambda r, kw, p: count_marked_lines(r, kw["marker"].strip()) == kw["num_sections"],
    lambda kw: f"Organise your response in exactly {plural(kw['num_sections'], 'section')}; begin each section "
               f"with a line that starts with \"{kw['marker'].strip()}\".",
    lambda rng, p: {"marker": rng.choice(("##", "###", "Part", "Step")), "num_sections": rng.randint(2, 4)},
    conflicts=("detectable_format:multiple_sections",))


def _json_has_keys(r, kw, p):
    ok, value = parse_json(strip_code_fence(r))
    return ok and isinstance(value, dict) and all(k in value for k in kw["keys"])


reg("detectable_format:json_keys", {"keys": "texts"},
    _json_has_keys,
    lambda kw: f"Your entire response must be one JSON object with the key{'s' * (len(kw['keys']) > 1)} "
               f"{quoted(kw['keys'])}; "
               "you may wrap it in markdown ticks such as ```.",
    lambda rng, p: {"keys": rng.sample(WORDS, rng.randint(1, 3))},
    conflicts=(ALL,), except_=("keywords:forbidden_words", "keywords:existence"))

reg("detectable_format:number_lines", {"num_lines": "count"},
    lambda r, kw, p: sum(1 for line in r.split("\n") if line.strip()) == kw["num_lines"],
    lambda kw: f"Your response must consist of exactly {plural(kw['num_lines'], 'non-empty line')}.",
    lambda rng, p: {"num_lines": rng.randint(1, 5)})
