"""FollowBench's rule-checked items (English), written from the official rules (YJiangcm/FollowBench,
code/rule_based_evaluation.py), level by level:

    rule_applies(category, source, example_id, level)   # is this item scored by a rule, not a judge?
    check(category, source, example_id, level, response, target) -> bool

- answer checks, the same at every level: E2E and text_editing (exact match), WIKIEVENTS (every line one of the
  target's lines), CONLL2003 (one of the listed entities), BBH_logical / BBH_time / gsm_8k (the last "(X)",
  "dd/dd/dddd", "$n" in the response equals the target), self_made_space (the target occurs in it);
- cumulative constraint checks, level L = the first L checks: cnn_dailymail, xsum, samsum, gigaword, arxiv
  (mixed category) and format items 22 and 30;
- example items (`check_example`): the response must match the target's template, its {answer} any text without
  a line break (the official full-match of `.*`).

Quirks of the official rules are kept, so that scores compare: sentences are the non-empty pieces between
. ! ?; word counts split on single spaces where the official code does (xsum, samsum, gigaword, arxiv) and on any
whitespace elsewhere; format item 22 counts "1." as a one-word sentence, so its levels 4-5 (number markers and
sentences over 20 words) can only pass without "N." fragments; format item 30 forbids words ending in "-ly" (with
the hyphen). Every check is linear in the response (no regular expression that backtracks over it), so a hostile
1 MB response is scored in well under a second; the one exception, an example template with several wildcards
(none in the released data), falls back to the official regular expression. The Chinese rules (code_zh) differ and are not implemented here.
This file does not read files or call judges.
"""

import ast
import re
import string

RULE_SOURCES = ("E2E", "WIKIEVENTS", "CONLL2003", "text_editing", "cnn_dailymail", "xsum", "samsum", "gigaword",
                "arxiv", "BBH_logical", "BBH_time", "self_made_space", "gsm_8k")
FORMAT_RULE_IDS = (22, 30)  # format items whose five constraints are checked by rules
PUNCT = frozenset(string.punctuation)
SENTENCE_END = re.compile(r"[.!?]")
SENTENCE_30 = re.compile(r"(?<=[.?])(?<!\w\.\w.)(?<![A-Z][a-z]\.)\s")  # item 30's splitter: not after "e.g." "Mr."
KEYWORD_30 = re.compile(r"\*\*\d.[^:]*:")  # the official \*\*[\d].+?: read within one line


def rule_applies(category, source, example_id, level):
    """True for the items the official code scores by rules (every example item; the sources above; format
    items 22 and 30); level 0 (the seed instruction) is never scored."""
    if level < 1:
        return False
    return category == "example" or source in RULE_SOURCES or (category == "format" and example_id in FORMAT_RULE_IDS)


# ---------------------------------------------------------------------------------------------- text helpers


def sentences(text):
    return [s for s in SENTENCE_END.split(text) if s]


def has_word(text, word):
    return re.search(r"\b" + re.escape(word) + r"\b", text) is not None


def nth_has_word(text, n, word):
    """Sentence n (1-based) exists and contains `word` as a whole word."""
    sents = sentences(text)
    return len(sents) >= n and has_word(sents[n - 1], word)


def spaced_words(text):
    return len(text.split(" "))  # the official count for xsum, samsum, gigaword, arxiv: single spaces


def last_match(pattern, text):
    m = None
    for m in re.finditer(pattern, text):
        pass
    return m.group(0) if m else None


def present_continuous(text):
    return re.search(r"\b(am|is|are)\s+\w+ing\b", text) is not None


def present_perfect(text):
    return re.search(r"\b(has|have)\s+\w+", text) is not None


# ---------------------------------------------------------------------------------------------- answer checks


def _wikievents(response, target):
    lines = set(target.split("\n"))
    return all(line in lines for line in response.split("\n"))


def _conll(response, target):
    return response in ast.literal_eval(target)  # the target is the data's list of accepted entities


ANSWER_CHECKS = {
    "E2E": lambda r, t: r == t,
    "text_editing": lambda r, t: r == t,
    "WIKIEVENTS": _wikievents,
    "CONLL2003": _conll,
    "BBH_logical": lambda r, t: last_match(r"\([A-Z]\)", r) == t,
    "BBH_time": lambda r, t: last_match(r"\d{2}/\d{2}/\d{4}", r) == t,
    "gsm_8k": lambda r, t: last_match(r"\$\d+", r) == t,
    "self_made_space": lambda r, t: t in r,
}

# ---------------------------------------------------------------------------------------------- cumulative checks
# Level L passes when the first L checks pass.

CUMULATIVE = {
    "cnn_dailymail": [
        lambda r: len(sentences(r)) == 3,
        lambda r: all(len(s.split()) < 15 for s in sentences(r)),
        lambda r: nth_has_word(r, 1, "Potter") and nth_has_word(r, 2, "actor") and nth_has_word(r, 3, "films"),
        lambda r: not nth_has_word(r, 2, "lavish"),
        lambda r: len(sentences(r)) >= 3 and present_perfect(sentences(r)[2]),
    ],
    "xsum": [
        lambda r: len(sentences(r)) == 1,
        lambda r: spaced_words(r) < 20,
        lambda r: not has_word(r, "Newton Stewart"),
        present_continuous,
        lambda r: has_word(r, "operation"),
    ],
    "samsum": [
        lambda r: len(sentences(r)) == 1,
        lambda r: spaced_words(r) < 15,
        lambda r: has_word(r, "stuff"),
        lambda r: re.search("procrast", r, re.IGNORECASE) is None,
        lambda r: sum(c in PUNCT for c in r) == 1,
    ],
    "gigaword": [
        lambda r: spaced_words(r) == 8,
        lambda r: not any(c in PUNCT for c in r),
        str.islower,
        lambda r: not has_word(r, "bus"),
        lambda r: has_word(r, "in"),
    ],
    "arxiv": [
        lambda r: len(sentences(r)) == 1,
        lambda r: spaced_words(r) <= 20,
        lambda r: r[:2] == "We",
        lambda r: has_word(r, "activations"),
        lambda r: not has_word(r, "transformer"),
    ],
}


def _first(checks, level, response):
    return all(c(response) for c in checks[:level])


# ---------------------------------------------------------------------------------------------- format 22 and 30


def _numbered_paragraphs(text):
    """Every non-blank paragraph (split on blank lines) starts with "<digits>."."""
    for p in text.split("\n\n"):
        p = p.lstrip()
        if p and not re.match(r"\d+\.", p):
            return False
    return True


def format_22(response, level):
    """Three paragraphs; fewer than 3 sentences in each; every sentence over 20 words; number markers;
    level 5: four blank-line-separated parts (the closing line is one) ending with "Those are suggestions"."""
    parts = response.split("\n\n")
    checks = [
        lambda: len(parts) == (4 if level == 5 else 3),
        lambda: all(len(sentences(p)) < 3 for p in parts[:3]),
        lambda: all(len(s.split()) > 20 for s in sentences(response)),
        lambda: _numbered_paragraphs(response),
        lambda: response.endswith("Those are suggestions"),
    ]
    return all(c() for c in checks[:level])


def keyword_points(text):
    """The official count of '**<digit>...:' (non-overlapping, at least one character between the digit and the
    first colon after it, on the same line). Each line is cut after its last colon first: a start with no colon
    after it would otherwise scan to the end of the line, once per start (quadratic on hostile text)."""
    count = 0
    for line in text.split("\n"):
        last = line.rfind(":")
        if last >= 0:
            count += len(KEYWORD_30.findall(line, 0, last + 1))
    return count


def format_30(response, level):
    """'**' markers; five '**N. keyword:' points; points under 2 sentences; sentences of 10-15 words; no word
    ending in '-ly'."""
    sents = SENTENCE_30.split(response)
    checks = [
        lambda: "**" in response,
        lambda: keyword_points(response) == 5,
        lambda: all(len(s.split(".")) < 3 for s in sents if any(f"{n}." in s for n in range(1, 6))),
        lambda: all(10 <= len(s.split()) <= 15 for s in sents),
        lambda: not any(w.endswith("-ly") for s in sents for w in s.split()),
    ]
    return all(c() for c in checks[:level])


# ---------------------------------------------------------------------------------------------- example items


def example_template(target):
    """The pieces of an example item's template around its wildcards: the target without its
    '{instruction}\\n' line, '{{' '}}' unescaped, split at '{answer}' (and, as the official regex does, at a
    literal '.*')."""
    t = target.replace("{instruction}\n", "").replace("{{", "{").replace("}}", "}")
    return t.replace("{answer}", ".*").split(".*")


def check_example(response, target):
    """The response matches the template, each wildcard standing for text without a line break."""
    pieces = example_template(target)
    if len(pieces) == 2:  # every released item: prefix + answer + suffix, checked without a regex
        head, tail = pieces
        if len(response) < len(head) + len(tail) or not (response.startswith(head) and response.endswith(tail)):
            return False
        return "\n" not in response[len(head):len(response) - len(tail)]
    return re.fullmatch(".*".join(re.escape(p) for p in pieces), response) is not None


# ---------------------------------------------------------------------------------------------- dispatch


def check(category, source, example_id, level, response, target):
    """The official rule verdict for one rule-scored item (see rule_applies)."""
    if category == "example":
        return check_example(response, target)
    if source in ANSWER_CHECKS:
        return ANSWER_CHECKS[source](response, target)
    if source in CUMULATIVE:
        return _first(CUMULATIVE[source], level, response)
    if category == "format" and example_id == 22:
        return format_22(response, level)
    if category == "format" and example_id == 30:
        return format_30(response, level)
    raise ValueError(f"no FollowBench rule for category {category!r}, source {source!r}, example {example_id}")
