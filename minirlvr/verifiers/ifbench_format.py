"""IFBench's out-of-domain constraints, part 2: the format:* ids (layout, markup, quoting) and the custom:*
ids (whole tasks with one right shape of answer: a CSV table, a sorted list, a reversed sentence). Same
contract and the same rules about the reference's quirks as ifbench.py, whose module doc lists them.
"""

import csv
import functools
import io
import re
import string
import unicodedata
from collections import deque

from . import registry
from .ifbench import plain
from .ifbench_text import (PUNCT, PUNCT_SPACE, first_ifbench_sentences, ifbench_sentences, iter_ifbench_sentences,
                           iter_word_token_batches, strip_punct)
from .registry import ALL

reg = functools.partial(registry.reg, source="ifbench")

# --- format ----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _is_emoji():
    import emoji  # the package the reference uses: Unicode's emoji table, offline

    return emoji.is_emoji


def _emoji_after_every_sentence(text):
    """The last (or second-to-last) character of each sentence without punctuation is an emoji, or the next
    sentence starts with one (a sentence splitter puts "Great! 😀" 's emoji into the next sentence)."""
    is_emoji = _is_emoji()
    sentences = iter_ifbench_sentences(text)
    current = next(sentences, None)
    while current is not None:
        following = next(sentences, None)
        bare = strip_punct(current).strip()
        if not bare:
            return False
        if not is_emoji(bare[-1]) and not is_emoji(bare[-2] if len(bare) > 1 else bare[-1]):
            if following is None:
                return False
            after = strip_punct(following).strip()
            if not after or not is_emoji(after[0]):
                return False
        current = following
    return True


plain("format:emoji", _emoji_after_every_sentence,
      "Please use an emoji at the end of every sentence.")


def _surviving_lines(text):
    """The reference's `for line in lines: if not line.strip(): lines.remove(line)` over text.split("\\n"),
    in linear time. Removing from a list while iterating it skips the element after each removal, and
    list.remove drops the FIRST equal line, which may be an earlier blank one that was skipped."""
    lines = text.split("\n")
    removed = [False] * len(lines)
    waiting = {}  # blank line value -> indices of not yet removed lines with that value, in order
    skip = False
    for i, line in enumerate(lines):
        blank = not line.strip()
        if blank:
            waiting.setdefault(line, deque()).append(i)
        if skip:
            skip = False
            continue
        if blank:
            removed[waiting[line].popleft()] = True
            skip = True
    return [line for line, gone in zip(lines, removed) if not gone]


def _indent(line):
    return len(line) - len(line.lstrip(" "))


def _stairs(text):
    lines = _surviving_lines(text)
    return all(_indent(b) > _indent(a) for a, b in zip(lines, lines[1:]))


plain("format:line_indent", _stairs,
      "Create stairs by incrementally indenting each new line.",
      conflicts=("format:newline", "format:sub-bullets", "format:no_bullets_bullets",
               "detectable_format:number_bullet_lists"))

reg("format:list", {"sep": "text"},
    lambda r, kw, p: r.count(kw["sep"]) >= 2,  # like the reference: anywhere, not only at line starts
    lambda kw: f"Answer with a list of items, instead of bullet points use {kw['sep']}.",
    lambda rng, p: {"sep": rng.choice(("...", "SEPARATOR", "!?!?", "-"))})


def _word_per_line(text):
    bare = strip_punct(text)
    lines = [line for line in bare.strip().split("\n") if line != ""]  # "  " still counts as a line
    return len(lines) == len(bare.split())


plain("format:newline", _word_per_line,
      "Write each word on a new line.",
      conflicts=("words:vowel", "format:sub-bullets", "format:no_bullets_bullets", "format:thesis",
               "format:output_template", "detectable_format:number_bullet_lists"))


def _sentences_then_bullets(text):
    """At least two sentences, then at least two "*" lines and nothing else. Like the reference, a blank
    line among the sentences ends them (its empty sentence list becomes the "still in sentences" flag)."""
    in_sentences, n_sentences, n_bullets = True, 0, 0
    for line in text.split("\n"):
        line = line.strip()
        if line.startswith("*"):
            if n_sentences < 2:
                return False
            in_sentences = False
            n_bullets += 1
        elif in_sentences:
            in_sentences = bool(line)  # a non-blank line always has at least one sentence
            if n_sentences < 2:
                n_sentences += len(first_ifbench_sentences(line, 2))
        else:
            return False
    return n_bullets >= 2


plain("format:no_bullets_bullets", _sentences_then_bullets,
      "Your answer must contain at least two sentences ending in a period followed by at least two "
      "bullet points denoted by *.",
      conflicts=("detectable_format:number_bullet_lists", "format:sub-bullets"))

_SPACE = re.compile(r"\s")

plain("format:no_whitespace", lambda r: not _SPACE.search(r),
      "The output should not contain any whitespace.",
      conflicts=(ALL,))

OPTIONS_BANK = ("yes/no/maybe", "I know or I don't know", "a), b), c), d)")
_LETTER_OPTIONS = re.compile(r"\W*[aA]\W*[bB]\W*[cC]\W*")


def parse_options(options):
    """(options, exact): the reference splits on "/", else on "or", else on ","; letter options ("a), b),
    c)") must then be answered exactly, text options up to case and edge punctuation."""
    sep = "/" if "/" in options else "or" if "or" in options else ","
    return [o.strip() for o in options.split(sep)], _LETTER_OPTIONS.match(options) is not None


def _one_option(text, options):
    choices, exact = parse_options(options)
    if exact:
        return text in choices
    answer = text.strip(PUNCT_SPACE).lower()
    return any(o.strip(PUNCT_SPACE).lower() == answer for o in choices)


reg("format:options", {"options": "text"},
    lambda r, kw, p: _one_option(r, kw["options"]),
    lambda kw: f"Answer with one of the following options: {kw['options']}. Do not give any explanation.",
    lambda rng, p: {"options": rng.choice(OPTIONS_BANK)},
    conflicts=(ALL,))

TEMPLATE = ("My Answer:", "My Conclusion:", "Future Outlook:")

plain("format:output_template", lambda r: all(part in r for part in TEMPLATE),
      "Use this exact template for your response: My Answer: [answer] My Conclusion: [conclusion] Future "
      "Outlook: [outlook]",
      conflicts=("detectable_format:json_format", "combination:two_responses"))

_CLOSING = {")": "(", "]": "[", "}": "{"}
_BRACKET = re.compile(r"[()\[\]{}]")
_QUOTE = re.compile("[\"']")


def nested_brackets(text, depth=5):
    """A pair closed after brackets were open `depth` deep; a mismatched closer starts the count afresh."""
    stack, deepest = [], 0
    for ch in _BRACKET.findall(text):
        if ch in "([{":
            stack.append(ch)
            deepest = max(deepest, len(stack))
        elif ch in _CLOSING:
            if stack and stack[-1] == _CLOSING[ch]:
                stack.pop()
                if deepest >= depth:
                    return True
            else:
                stack, deepest = [], 0
    return False


plain("format:parentheses", nested_brackets,
      "Nest parentheses (and [brackets {and braces}]) at least 5 levels deep.")


def nested_quotes(text, depth=3):
    """The reference's reading of quotes: a quote equal to the innermost open one closes it, any other opens
    a level; true once a close leaves `depth` levels below the deepest reached."""
    stack, deepest = [], 0
    for ch in _QUOTE.findall(text):
        if stack and ch == stack[-1]:
            stack.pop()
            if deepest - len(stack) >= depth:
                return True
        else:
            stack.append(ch)
            deepest = max(deepest, len(stack))
    return False


plain("format:quotes", nested_quotes,
      "Include quotes within quotes within quotes, at least 3 levels deep, alternating between double "
      "quotes and single quotes.")

_DIGITS_PUNCT_NO_QUOTE = string.digits + PUNCT.replace('"', "")


def _quotes_explained(text):
    text = text.replace("\u201c", '"').replace("\u201d", '"').replace("'\"'", "")
    text = "".join(text.split())
    if '""' in text:
        return False
    rest = text.strip(_DIGITS_PUNCT_NO_QUOTE)
    return not rest or rest[-1] != '"'  # nothing left: the reference raises; no quote, nothing unexplained


plain("format:quote_unquote", _quotes_explained,
      "Every quoted phrase must be followed by an unquoted explanation.",
      conflicts=("startend:quotation",))


def _italic_thesis(text):
    start = text.find("<i>")
    if start < 0:
        start = text.find("<em>")
        if start < 0:
            return False
    text = text[start:]
    end = text.find("</i>")
    if end < 0:
        end = text.find("</em>")
        if end < 0:
            return False
    # the reference's offsets are those of <i>: with <em> the thesis keeps its ">" and the rest starts at ">"
    return bool(text[3:end].strip()) and bool(text[end + 4:].strip())


plain("format:thesis", _italic_thesis,
      "Each section must begin with a thesis statement in italics, use HTML to indicate the italics.",
      conflicts=("detectable_format:json_format",))

reg("format:sub-bullets", {},
    lambda r, kw, p: all("-" in part for part in r.split("*")[1:]),  # the reference's test: "-" after each "*"
    lambda kw: "Your response must include bullet points denoted by * and at least one sub-bullet point denoted by "
               "- for each bullet point.",
    lambda rng, p: {},
    conflicts=("detectable_format:number_bullet_lists", "detectable_format:number_highlighted_sections"))


# Tokens whose first character can be cased: an ASCII letter or any non-ASCII character (an ASCII digit or
# mark is neither upper- nor lower-case, so such a token can never fail the check).
_CASED_START = re.compile(r"(?<!\S)[^\s\x00-\x40\x5b-\x60\x7b-\x7f]\S*")


def _title_case(text):
    """No Treebank token is lower-case throughout ("the", "n't") or lower-case then upper-case ("iPHONE")."""
    for tokens in iter_word_token_batches(text):
        for word in _CASED_START.findall(" ".join(tokens)):  # a text of punctuation costs no Python loop
            if word[0].isupper() and word[1:].islower():
                continue
            if word[0].islower() and (word[1:].isupper() or word[1:].islower()):
                return False
    return True


plain("format:title_case", _title_case,
      "Write the entire response in title case (capitalize the first letter of every major word).",
      conflicts=("change_case:english_lowercase", "change_case:english_capital"))

# --- custom: whole tasks ---------------------------------------------------------------------------
_NUMBERS = re.compile(r"\d+")

plain("custom:multiples", lambda r: _NUMBERS.findall(r.replace(",", ", ")) == [str(n) for n in range(14, 51, 7)],
      "Count from 10 to 50 but only print multiples of 7.",
      conflicts=(ALL,))

_QUESTION_LABEL = re.compile(r"Question \d+[\.|\):;]?\s*")
_OPTION_LINE = re.compile(r"[A-Ea-e][\.|\)]\s*\w+")


def _split_questions(text):
    """The reference's re.split(r"\\n*(?:Question \\d+[.|):;]?\\s*)", text), without its quadratic \\n* scan:
    the newlines right before a label belong to the separator."""
    parts = _QUESTION_LABEL.split(text)
    return [part.rstrip("\n") for part in parts[:-1]] + parts[-1:]


def _four_questions(text):
    if text[text.find("Question"):] != text:
        return False  # something before the first question (an explanation)
    questions = _split_questions(text)
    if questions[0] == "":
        questions = questions[1:]
    questions = [q.strip() for q in questions if q.strip()]
    if len(questions) != 4:
        return False
    lengths = []
    for q in questions:
        question, n_options, in_options = "", 0, False
        for line in q.split("\n"):
            if _OPTION_LINE.match(line.strip()):
                n_options += 1
                in_options = True
            elif not in_options:
                question += " " + line.strip()
        if n_options != 5:
            return False
        lengths.append(len(question.strip()))
    return all(a < b for a, b in zip(lengths, lengths[1:]))


plain("custom:mcq_count_length", _four_questions,
      "Generate 4 multiple choice questions with 5 options each about '20th century art history'. Each "
      "question should start with the label \"Question\". The questions should get progressively longer. "
      "Do not provide an explanation.",
      conflicts=(ALL,))


def ascii_fold(text):
    """'São Tomé' -> 'Sao Tome': compatibility decomposition, then everything outside ASCII dropped."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _africa_reversed(text):
    lines = [s for s in (line.strip(PUNCT_SPACE) for line in text.split("\n")) if s]
    start = next((i for i, line in enumerate(lines) if "Zimbabwe" in line), None)
    if start is None or len(lines) - start < 52:
        return False
    folded = [ascii_fold(line) for line in lines[start:]]
    return all(a >= b for a, b in zip(folded, folded[1:]))


plain("custom:reverse_newline", _africa_reversed,
      "List the countries of Africa in reverse alphabetical order, each on a new line.",
      conflicts=(ALL,))


def _words_reversed(text):
    text = " ".join(strip_punct(text.lower().strip()).split()[::-1])
    return "bald eagle" in text and text in ifbench_sentences(text)


plain("custom:word_reverse", _words_reversed,
      "What animal is the national symbol of the US? Respond to this query, but make your sentence in "
      "reverse order of what it should be, per word.",
      conflicts=(ALL,))

plain("custom:character_reverse", lambda r: "elgae dlab" in r.lower(),
      "What animal is the national symbol of the US? Respond to this query, but make your sentence in "
      "reverse order of what it should be, per letter.",
      conflicts=(ALL,))


def _alphabet_story(text):
    n = 0
    for n, sentence in enumerate(iter_ifbench_sentences(text), 1):
        words = sentence.split()
        if n > 26 or not words or words[0].lower()[0] != chr(96 + n):
            return False
    return n == 26


plain("custom:sentence_alphabet", _alphabet_story,
      "Tell me a 26-sentence story where each sentence's first word starts with the letters of the "
      "alphabet in order.",
      conflicts=(ALL,))

# Capitals of European countries north of 45 degrees, north to south: the reference's answer key.
NORTHERN_CAPITALS = ("Reykjavik Helsinki Oslo Tallinn Stockholm Riga Moscow Copenhagen Vilnius Minsk Dublin Berlin "
                     "Amsterdam Warsaw London Brussels Prague Luxembourg Paris Vienna Bratislava Budapest Vaduz "
                     "Chisinau Bern Ljubljana Zagreb").split()


def _capitals_sorted(text):
    names = [name.strip() for name in ascii_fold(text).split(",") if name.strip()]
    return names == NORTHERN_CAPITALS


plain("custom:european_capitals_sort", _capitals_sorted,
      "Give me the names of all capital cities of european countries whose latitude is higher than than 45 "
      "degrees? List the capital cities without country names, separated by commas, sorted by latitude, "
      "from highest to lowest.",
      conflicts=(ALL,))


def _csv_rows(text, limit, delimiter=","):
    """The first `limit` + 1 rows of `text` read as CSV, or None if the csv module rejects it (a field over
    its size limit: the reference raises there)."""
    rows = []
    try:
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            rows.append(row)
            if len(rows) > limit:
                break
    except csv.Error:
        return None
    return rows


CITY_HEADER = ["ID", "Country", "City", "Year", "Count"]


def _city_csv(text):
    rows = _csv_rows(text, 8)
    return rows is not None and len(rows) == 8 and rows[0] == CITY_HEADER and all(len(r) == 5 for r in rows[1:])


plain("custom:csv_city", _city_csv,
      'Generate CSV data: The column names are ["ID", "Country", "City", "Year", "Count"], the data should '
      "be comma delimited. Please generate 7 rows.",
      conflicts=(ALL,))


def _header(names, sep):
    return re.compile("^" + sep.join(f'({n}|"{n}")' for n in names) + "$")


_PRODUCT_HEADER = _header(["ProductID", "Category", "Brand", "Price", "Stock"], r",[ \t]*")
_STUDENT_HEADER = _header(["StudentID", "Subject", "Grade", "Semester", "Score"], r"\t *")
_SPECIAL = re.compile(r"[^\d\w\s]")


def quoted_special(field):
    """The reference's re.match(r'".*[^\\d\\w\\s].*"', field) in linear time: a '"' first, then, before the
    first newline, a character that is not a letter, digit or space with a '"' somewhere after it."""
    if not field.startswith('"'):
        return False
    line = field[1:].split("\n", 1)[0]
    last_quote = line.rfind('"')
    return last_quote > 0 and _SPECIAL.search(line, 0, last_quote) is not None


def _product_csv(text):
    if not _PRODUCT_HEADER.match(text.split("\n")[0].strip()):
        return False
    rows = _csv_rows(text.replace('"', '"""'), 15)  # a quoted field keeps its quotes
    if rows is None or len(rows) != 15:
        return False
    for row in rows[1:]:
        if len(row) != 5:
            return False
        if any(quoted_special(field) for field in row):
            return True  # the reference stops at the first row with a quoted special field
    return False


plain("custom:csv_special_character", _product_csv,
      'Generate CSV data: The column names are ["ProductID", "Category", "Brand", "Price", "Stock"], the '
      "data should be comma delimited. Please generate 14 rows. Add one field which contains a special "
      "character and enclose it in double quotes.",
      conflicts=(ALL,))


def _student_tsv(text):
    if not _STUDENT_HEADER.match(text.split("\n")[0].strip()):
        return False
    rows = _csv_rows(text.replace('"', '"""'), 4, delimiter="\t")
    if rows is None or len(rows) != 4:
        return False
    for row in rows:
        fields = [f.strip() for f in row]
        if len(row) != 5 or not all(f and f[0] == '"' and f[-1] == '"' for f in fields):
            return False
    return True


plain("custom:csv_quotes", _student_tsv,
      'Generate CSV data: The column names are ["StudentID", "Subject", "Grade", "Semester", "Score"], the '
      "data should be tab delimited. Please generate 3 rows and enclose each single field in double quotes.",
      conflicts=(ALL,))

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_DAYS = {**dict.fromkeys((1, 3, 5, 7, 8, 10, 12), 31), **dict.fromkeys((4, 6, 9, 11), 30), 2: 29}


def _napoleon_dates(text):
    """Comma-separated YYYY-MM-DD dates within Napoleon's life (1769-1821), days within the month's length.
    Like the reference, month 00 and day 00 pass."""
    for date in text.strip().split(","):
        date = date.strip()
        if not _DATE.match(date):
            return False
        year, month, day = (int(x) for x in date.split("-"))
        if not 1769 <= year <= 1821 or month > 12 or day > _DAYS.get(month, 99):
            return False
    return True


plain("custom:date_format_list", _napoleon_dates,
      "List the start dates of all the battles Napoleon fought separated by commas, use the following date "
      "format: YYYY-MM-DD. Do not provide an explanation.",
      conflicts=(ALL,))

