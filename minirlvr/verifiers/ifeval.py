"""The 25 IFEval instructions (Zhou et al. 2023, "Instruction-Following Evaluation for Large Language
Models"), with the kwargs names and verdicts of Google's reference `instructions.py`.

Written from the reference's documented behaviour, not copied. Deliberate differences, each listed in
tests/test_ifeval_agreement.py where it changes a verdict on IFEval's data:
- keywords, forbidden words, postscript markers and section markers are matched as literal text; the
  reference pastes them into regular expressions (so "c++" would crash it);
- a `letter` kwarg that is not a letter ("#", "!") is counted as given; the reference replaces it with a
  random letter;
- sentence and upper-case-word counts come from text.py's rules instead of NLTK's models;
- every check runs in linear time: the reference's placeholder, bullet and title regexes backtrack
  quadratically on inputs such as 100k "[" or 100k newlines, so those three are hand-written scans
  (tests/test_verifiers.py checks them against the reference's regexes on random strings);
- JSON nested deeper than Python's parser allows counts as not JSON, where the reference crashes.
Kwargs are required (the reference draws missing ones at random, which makes a score a random variable).
"""

import functools
import json
import re
import string

from . import registry
from .registry import ALL, RELATIONS, VerifierError
from .text import count_sentences, count_upper_words, count_words, detect_language

# A small word list for sampling keywords: common nouns a tiny synthetic world can write about.
WORDS = (
    "apple river garden window music forest bread ocean letter mountain candle coffee winter bridge "
    "library planet summer doctor market school island pencil orange rabbit travel kitchen castle "
    "shadow thunder village jacket").split()

LANGUAGES = {  # langdetect codes the reference names in its descriptions (a subset)
    "en": "English", "es": "Spanish", "pt": "Portuguese", "ar": "Arabic", "hi": "Hindi",
    "fr": "French", "ru": "Russian", "de": "German", "ja": "Japanese", "it": "Italian",
    "bn": "Bengali", "uk": "Ukrainian", "th": "Thai", "ur": "Urdu", "ta": "Tamil", "te": "Telugu",
    "bg": "Bulgarian", "ko": "Korean", "pl": "Polish", "he": "Hebrew", "fa": "Persian",
    "vi": "Vietnamese", "ne": "Nepali", "sw": "Swahili", "kn": "Kannada", "mr": "Marathi",
    "gu": "Gujarati", "pa": "Punjabi", "ml": "Malayalam", "fi": "Finnish",
}
ANSWER_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
END_PHRASES = ("Any other questions?", "Is there anything else I can help with?",
               "Let me know if you have additional questions.")


def compare(n, relation, threshold):
    return n < threshold if relation == RELATIONS[0] else n >= threshold


def quoted(words, conjunction="and"):
    words = [f'"{w}"' for w in words]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" {conjunction} " + words[-1]


def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


reg = functools.partial(registry.reg, source="ifeval")


def relation_sample(rng):
    return rng.choice(RELATIONS)


# --- keywords --------------------------------------------------------------------------------------


def _has(text, word):
    return re.search(re.escape(word), text, flags=re.IGNORECASE) is not None


reg("keywords:existence", {"keywords": "texts"},
    lambda r, kw, p: all(_has(r, k) for k in kw["keywords"]),
    lambda kw: f"Include the keyword{'s' * (len(kw['keywords']) > 1)} {quoted(sorted(kw['keywords']))} "
               "in your response.",
    lambda rng, p: {"keywords": rng.sample(WORDS, 2)})

reg("keywords:frequency", {"keyword": "text", "frequency": "count", "relation": "relation"},
    lambda r, kw, p: compare(len(re.findall(re.escape(kw["keyword"].strip()), r, flags=re.IGNORECASE)),
                             kw["relation"], kw["frequency"]),
    lambda kw: f"In your response, the word \"{kw['keyword'].strip()}\" should appear {kw['relation']} "
               f"{plural(kw['frequency'], 'time')}.",
    lambda rng, p: {"keyword": rng.choice(WORDS), "frequency": rng.randint(1, 3), "relation": relation_sample(rng)})


def _no_forbidden(text, words):
    return not any(re.search(r"\b" + re.escape(w) + r"\b", text, flags=re.IGNORECASE) for w in words)


reg("keywords:forbidden_words", {"forbidden_words": "texts"},
    lambda r, kw, p: _no_forbidden(r, kw["forbidden_words"]),
    lambda kw: f"Do not include the word{'s' * (len(set(kw['forbidden_words'])) > 1)} "
               f"{quoted(sorted(set(kw['forbidden_words'])), 'or')} in your response.",
    lambda rng, p: {"forbidden_words": rng.sample(WORDS, 2)})

reg("keywords:letter_frequency", {"letter": "char", "let_frequency": "count", "let_relation": "relation"},
    lambda r, kw, p: compare(r.lower().count(kw["letter"].lower()), kw["let_relation"], kw["let_frequency"]),
    lambda kw: f"In your response, the letter \"{kw['letter'].lower()}\" should appear {kw['let_relation']} "
               f"{plural(kw['let_frequency'], 'time')}.",
    lambda rng, p: {"letter": rng.choice(string.ascii_lowercase), "let_frequency": rng.randint(1, 10),
                    "let_relation": relation_sample(rng)})

# --- language and case -----------------------------------------------------------------------------


def _language_is(text, code):
    found = detect_language(text)
    return found is None or found == code  # undetectable counts as followed, like the reference


reg("language:response_language", {"language": "text"},
    lambda r, kw, p: _language_is(r, kw["language"]),
    lambda kw: f"Your ENTIRE response should be in {LANGUAGES.get(kw['language'], kw['language'])} "
               "language, no other language is allowed.",
    lambda rng, p: {"language": rng.choice(sorted(LANGUAGES))},
    conflicts=("language:response_language", "detectable_format:multiple_sections", "keywords:existence",
               "keywords:frequency", "keywords:forbidden_words", "startend:end_checker",
               "change_case:english_capital", "change_case:english_lowercase"))

reg("change_case:capital_word_frequency", {"capital_frequency": "count", "capital_relation": "relation"},
    lambda r, kw, p: compare(count_upper_words(r), kw["capital_relation"], kw["capital_frequency"]),
    lambda kw: f"In your response, words in all capital letters should appear {kw['capital_relation']} "
               f"{plural(kw['capital_frequency'], 'time')}.",
    lambda rng, p: {"capital_frequency": rng.randint(1, 5), "capital_relation": relation_sample(rng)},
    conflicts=("change_case:english_lowercase", "change_case:english_capital"))

reg("change_case:english_capital", {},
    lambda r, kw, p: r.isupper() and _language_is(r, "en"),
    lambda kw: "Your entire response should be in English, and in all capital letters.",
    lambda rng, p: {})

reg("change_case:english_lowercase", {},
    lambda r, kw, p: r.islower() and _language_is(r, "en"),
    lambda kw: "Your entire response should be in English, and in all lowercase letters. "
               "No capital letters are allowed.",
    lambda rng, p: {},
    conflicts=("change_case:english_capital",))

# --- length ----------------------------------------------------------------------------------------

reg("length_constraints:number_sentences", {"num_sentences": "count", "relation": "relation"},
    lambda r, kw, p: compare(count_sentences(r), kw["relation"], kw["num_sentences"]),
    lambda kw: f"Your response should contain {kw['relation']} {plural(kw['num_sentences'], 'sentence')}.",
    lambda rng, p: {"num_sentences": rng.randint(1, 6), "relation": relation_sample(rng)})


def _divided_paragraphs(text, n):
    parts = re.split(r"\s?\*\*\*\s?", text)
    count = len(parts)
    for k, part in enumerate(parts):
        if not part.strip():
            if k in (0, len(parts) - 1):
                count -= 1
            else:
                return False  # an empty paragraph between two dividers
    return count == n


reg("length_constraints:number_paragraphs", {"num_paragraphs": "count"},
    lambda r, kw, p: _divided_paragraphs(r, kw["num_paragraphs"]),
    lambda kw: f"There should be {plural(kw['num_paragraphs'], 'paragraph')}. "
               "Paragraphs are separated with the markdown divider: ***",
    lambda rng, p: {"num_paragraphs": rng.randint(1, 4)},
    conflicts=("length_constraints:nth_paragraph_first_word", "length_constraints:number_sentences"))

reg("length_constraints:number_words", {"num_words": "count", "relation": "relation"},
    lambda r, kw, p: compare(count_words(r), kw["relation"], kw["num_words"]),
    lambda kw: f"Answer with {kw['relation']} {plural(kw['num_words'], 'word')}.",
    lambda rng, p: {"num_words": rng.choice((10, 20, 30, 50, 80, 100)), "relation": relation_sample(rng)})


def _nth_paragraph_first_word(text, kw):
    paragraphs = text.split("\n\n")
    count = sum(1 for par in paragraphs if par.strip())
    nth = kw["nth_paragraph"]
    if nth > count:
        return False
    paragraph = paragraphs[nth - 1].strip()  # the reference indexes the raw list, empty parts included
    if not paragraph:
        return False
    word = paragraph.split()[0].lstrip("'").lstrip('"')
    first = ""
    for ch in word:
        if ch in ".,?!'\"":
            break
        first += ch.lower()
    return count == kw["num_paragraphs"] and first == kw["first_word"].lower()


def _nth_sample(rng, p):
    n = rng.randint(2, 4)
    return {"num_paragraphs": n, "nth_paragraph": rng.randint(1, n), "first_word": rng.choice(WORDS)}


def _nth_check(r, kw, p):
    if not 1 <= kw["nth_paragraph"] <= kw["num_paragraphs"]:
        raise VerifierError("length_constraints:nth_paragraph_first_word: kwarg 'nth_paragraph' must be "
                            f"between 1 and num_paragraphs={kw['num_paragraphs']}, got {kw['nth_paragraph']}")
    return _nth_paragraph_first_word(r, kw)


reg("length_constraints:nth_paragraph_first_word",
    {"num_paragraphs": "count", "nth_paragraph": "count", "first_word": "text"},
    _nth_check,
    lambda kw: f"There should be {plural(kw['num_paragraphs'], 'paragraph')}. Paragraphs and only paragraphs "
               "are separated from each other by two new lines, as if it was '\\n\\n' in python. "
               f"Paragraph {kw['nth_paragraph']} must start with the word \"{kw['first_word'].lower()}\".",
    _nth_sample,
    conflicts=("length_constraints:number_paragraphs",))

# --- detectable content ----------------------------------------------------------------------------


def count_placeholders(text):
    """Non-overlapping "[...]" on one line, shortest first (the reference's r"\\[.*?\\]"), in linear time."""
    n, i = 0, 0
    while True:
        i = text.find("[", i)
        if i < 0:
            return n
        eol = text.find("\n", i + 1)
        close = text.find("]", i + 1, len(text) if eol < 0 else eol)  # bounded: "[\n" * 50k stays linear
        if close >= 0:
            n, i = n + 1, close + 1
        elif eol < 0:
            return n
        else:
            i = eol + 1  # no "]" before the end of this line: no "[" on it can match


reg("detectable_content:number_placeholders", {"num_placeholders": "count"},
    lambda r, kw, p: count_placeholders(r) >= kw["num_placeholders"],
    lambda kw: f"The response must contain at least {plural(kw['num_placeholders'], 'placeholder')} "
               "represented by square brackets, such as [address].",
    lambda rng, p: {"num_placeholders": rng.randint(1, 3)})


def _has_postscript(text, marker):
    text = text.lower()
    if marker == "P.P.S":
        pattern = r"p\.\s?p\.\s?s"
    elif marker == "P.S.":
        pattern = r"p\.\s?s\."
    else:
        pattern = re.escape(marker.lower())
    return re.search(pattern, text) is not None


reg("detectable_content:postscript", {"postscript_marker": "text"},
    lambda r, kw, p: _has_postscript(r, kw["postscript_marker"].strip()),
    lambda kw: "At the end of your response, please explicitly add a postscript starting with "
               f"{kw['postscript_marker'].strip()}",
    lambda rng, p: {"postscript_marker": rng.choice(("P.S.", "P.P.S"))})

# --- detectable format -----------------------------------------------------------------------------

_LINE_START = re.compile(r"(?:\A|\n)[^\S\n]*(?=\S)")


def count_bullets(text):
    """The reference's count of r"^\\s*\\*[^\\*].*$" plus r"^\\s*-.*$" matches (multiline), in linear time.

    A match starts at the first non-space character after a line start; since "\\s*" also crosses blank
    lines, only line starts that an earlier match of the same pattern has not consumed count."""
    n = 0
    for mark in "*-":
        end = 0  # where the previous match of this pattern ended
        for m in _LINE_START.finditer(text):
            line_start, q = (m.start() + 1 if text[m.start()] == "\n" else 0), m.end()
            if line_start < end or text[q] != mark:
                continue
            if mark == "*":
                if q + 1 >= len(text) or text[q + 1] == "*":
                    continue
                stop = text.find("\n", q + 2)  # "[^*]" may itself be the newline
            else:
                stop = text.find("\n", q + 1)
            end = len(text) if stop < 0 else stop
            n += 1
    return n


reg("detectable_format:number_bullet_lists", {"num_bullets": "count"},
    lambda r, kw, p: count_bullets(r) == kw["num_bullets"],
    lambda kw: f"Your answer must contain exactly {plural(kw['num_bullets'], 'bullet point')}. "
               "Use markdown bullet points such as:\n* This is point 1.\n* This is point 2",
    lambda rng, p: {"num_bullets": rng.randint(1, 4)})

reg("detectable_format:constrained_response", {},
    lambda r, kw, p: any(opt in r.strip() for opt in ANSWER_OPTIONS),
    lambda kw: "Answer with one of the following options: " + ", ".join(f'"{o}"' for o in ANSWER_OPTIONS),
    lambda rng, p: {},
    conflicts=(ALL,))

_HIGHLIGHT = re.compile(r"\*[^\n*]*\*")
_BOLD = re.compile(r"\*\*[^\n*]*\*\*")


def count_highlights(text):
    singles = sum(1 for m in _HIGHLIGHT.finditer(text) if m.group(0).strip("*").strip())
    doubles = sum(1 for m in _BOLD.finditer(text) if m.group(0)[2:-2].strip())
    return singles + doubles


reg("detectable_format:number_highlighted_sections", {"num_highlights": "count"},
    lambda r, kw, p: count_highlights(r) >= kw["num_highlights"],
    lambda kw: f"Highlight at least {plural(kw['num_highlights'], 'section')} in your answer with markdown, "
               "i.e. *highlighted section*.",
    lambda rng, p: {"num_highlights": rng.randint(1, 3)})


def count_sections(text, splitter):
    return sum(1 for _ in re.finditer(r"\s?" + re.escape(splitter) + r"\s?\d+\s?", text))


reg("detectable_format:multiple_sections", {"section_spliter": "text", "num_sections": "count"},
    lambda r, kw, p: count_sections(r, kw["section_spliter"].strip()) >= kw["num_sections"],
    lambda kw: f"Your response must have {plural(kw['num_sections'], 'section')}. Mark the beginning of each "
               f"section with {kw['section_spliter'].strip()} X, such as:\n{kw['section_spliter'].strip()} 1\n"
               f"[content of section 1]\n{kw['section_spliter'].strip()} 2\n[content of section 2]",
    lambda rng, p: {"section_spliter": rng.choice(("Section", "SECTION")), "num_sections": rng.randint(2, 4)},
    conflicts=("detectable_format:number_highlighted_sections",))


def strip_code_fence(text):
    text = text.strip()
    for prefix in ("```json", "```Json", "```JSON", "```"):  # applied in turn, like the reference
        text = text.removeprefix(prefix)
    return text.removesuffix("```").strip()


def parse_json(text):
    """(True, value) if `text` is JSON, else (False, None). Nesting too deep for Python's parser counts
    as not JSON (the reference would crash there instead)."""
    try:
        return True, json.loads(text)
    except (ValueError, RecursionError):
        return False, None


reg("detectable_format:json_format", {},
    lambda r, kw, p: parse_json(strip_code_fence(r))[0],
    lambda kw: "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.",
    lambda rng, p: {},
    conflicts=(ALL,), except_=("keywords:forbidden_words", "keywords:existence"))


def has_title(text):
    """A "<<title>>" with a non-blank inside on one line: the reference's r"<<[^\\n]+>>" (greedy, so a
    match runs to the last ">>" of its line), scanned in linear time."""
    i = 0
    while True:
        i = text.find("<<", i)
        if i < 0:
            return False
        eol = text.find("\n", i)
        eol = len(text) if eol < 0 else eol
        j = text.rfind(">>", i + 3, eol)
        if j < 0:
            i = eol + 1  # no ">>" far enough along this line: no "<<" on it can match
            continue
        if text[i:j + 2].lstrip("<").rstrip(">").strip():
            return True
        i = j + 2


reg("detectable_format:title", {},
    lambda r, kw, p: has_title(r),
    lambda kw: "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
    lambda rng, p: {})

# --- combination -----------------------------------------------------------------------------------


def _two_responses(text):
    parts = text.split("******")
    kept = []
    for k, part in enumerate(parts):
        if part.strip():
            kept.append(part)
        elif k not in (0, len(parts) - 1):
            return False
    return len(kept) == 2 and kept[0].strip() != kept[1].strip()


reg("combination:two_responses", {},
    lambda r, kw, p: _two_responses(r),
    lambda kw: "Give two different responses. Responses and only responses should be separated by "
               "6 asterisk symbols: ******.",
    lambda rng, p: {},
    conflicts=(ALL,), except_=("keywords:forbidden_words", "keywords:existence", "language:response_language",
                               "detectable_format:title", "punctuation:no_comma"))


def _repeat_sample(rng, prompt):
    if not prompt:
        raise VerifierError("combination:repeat_prompt: kwarg 'prompt_to_repeat' is sampled from the prompt; "
                            "pass prompt=the request text")
    return {"prompt_to_repeat": prompt}


reg("combination:repeat_prompt", {"prompt_to_repeat": "text"},
    lambda r, kw, p: r.strip().lower().startswith(kw["prompt_to_repeat"].strip().lower()),
    lambda kw: "First repeat the request word for word without change, then give your answer (1. do not say "
               "any words or characters before repeating the request; 2. the request you need to repeat does "
               "not include this sentence)",
    _repeat_sample,
    conflicts=(ALL,), except_=("keywords:existence", "detectable_format:title", "punctuation:no_comma"))

# --- start / end, punctuation ----------------------------------------------------------------------

reg("startend:end_checker", {"end_phrase": "text"},
    lambda r, kw, p: r.strip().strip('"').lower().endswith(kw["end_phrase"].strip().lower()),
    lambda kw: f"Finish your response with this exact phrase: {kw['end_phrase'].strip()} "
               "No other words should follow this phrase.",
    lambda rng, p: {"end_phrase": rng.choice(END_PHRASES)})

reg("startend:quotation", {},
    lambda r, kw, p: len(r.strip()) > 1 and r.strip()[0] == '"' and r.strip()[-1] == '"',
    lambda kw: "Wrap your entire response with double quotation marks.",
    lambda rng, p: {},
    conflicts=("detectable_format:title",))

reg("punctuation:no_comma", {},
    lambda r, kw, p: "," not in r,
    lambda kw: "In your entire response, refrain from the use of any commas.",
    lambda rng, p: {})
