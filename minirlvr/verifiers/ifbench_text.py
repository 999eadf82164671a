"""Offline text measurements the IFBench verifiers need: IFBench's own sentence splitter, NLTK's
`word_tokenize` (Punkt sentences, then the improved Treebank rules), NLTK's English stop words, syllable
parity (syllapy, the package the reference uses), whether a text starts with a verb, and the
punctuation-stripping that IFBench's checks repeat.

IFBench's reference (Pyatkin et al. 2025) splits sentences with a short rule list of its own (titles,
initials, acronyms, decimals, ellipses, websites) and tokenizes words with NLTK, whose sentence model and
stop-word list are downloads, and tags parts of speech with NLTK's perceptron tagger, whose model is also a download.
Here:
- `ifbench_sentences` applies the same rules in the same order (the reference rewrites the text with
  "<prd>"/"<stop>" markers; we use private-use characters, so a text that itself contains U+E000, U+E001 or
  U+E003 is split at them);
- `word_tokens` is NLTK 3.9+'s NLTKWordTokenizer, rule for rule, on text.py's Punkt-like sentences, run
  over many sentences at once instead of one call per sentence; tests/test_ifbench_agreement.py checks it
  token for token against NLTK on IFBench's released responses;
- `STOP_WORDS` is NLTK's English list without the entries that contain an apostrophe (the reference
  counts r"\\w+" tokens, which never contain one, so those entries can never match);
- `starts_with_verb` tags the first word tokens with NLTK's perceptron model when its data files are found,
  else with TextBlob's bundled tagger, an approximation (pos_tagger.py).
Every function is linear in the input; none downloads anything.
"""

import functools
import itertools
import re
import string

from .pos_tagger import first_is_verb
from .text import iter_sentences, split_sentences

PUNCT = string.punctuation
PUNCT_SPACE = PUNCT + " "  # what the reference strips from the ends of words
_NO_PUNCT = str.maketrans("", "", PUNCT)


def strip_punct(text):
    """`text` without ASCII punctuation (the reference's str.translate idiom, used by many checks)."""
    return text.translate(_NO_PUNCT)


def clean_word(word):
    """A whitespace-split word without ASCII punctuation at either end (the reference's word.strip(...))."""
    return word.strip(PUNCT_SPACE)


# --- IFBench's sentence splitter -------------------------------------------------------------------
# Its rules, in its order: a "." that belongs to a title, website, decimal, ellipsis, "Ph.D.", initial or
# acronym is protected (PRD); an ellipsis, and an acronym or company suffix followed by a typical sentence
# starter, end a sentence (STOP); a closing quote moves before the end mark; every other . ? ! ends one.
# The protected "." after a company suffix before a starter is dropped, as in the reference.

_PRD, _STOP, _RUN = "\ue000", "\ue001", "\ue003"
_STARTERS = (r"(Mr|Mrs|Ms|Dr|Prof|Capt|Cpt|Lt|He\s|She\s|It\s|They\s|Their\s|Our\s|We\s|But\s|However\s"
             r"|That\s|This\s|Wherever)")
# A title's "." or a website's (one pass for both: neither rule changes what the other looks at)
_TITLE_OR_SITE = re.compile(r"\.(?<=Mr\.|St\.|Ms\.|Dr\.)|\.(?<=Mrs\.)|\.(?=com|net|org|io|gov|edu|me)")
_SUFFIXES = (" Inc.", " Ltd.", " Jr.", " Sr.", " Co.")
# Most patterns start at the "." and look back (same matches, but the regex engine can jump from one "."
# to the next instead of trying every position). The decimal rule cannot: it consumes the digit after the
# ".", so "1.2.3" protects only the first ".".
_DECIMAL = re.compile(r"([0-9])\.([0-9])")
_ELLIPSIS_HEAD = re.compile(r"\.(?=\.)")  # every "." of a run but the last ...
_ELLIPSIS_TAIL = re.compile(_RUN + r"\.")  # ... and the last one, which also ends the sentence
_INITIAL_SPACE = re.compile(r"\s([A-Za-z])\. ")
_ACRONYM_STARTER = re.compile(r"([A-Z]\.[A-Z]\.(?:[A-Z]\.)?) " + _STARTERS)
_THREE_LETTERS = re.compile(r"\.(?<=[A-Za-z]\.)([A-Za-z])\.([A-Za-z])\.")
_TWO_LETTERS = re.compile(r"\.(?<=[A-Za-z]\.)([A-Za-z])\.")
_SUFFIX_STARTER = re.compile(r" (Inc|Ltd|Jr|Sr|Co)\. " + _STARTERS)
_SPACE_INITIAL = re.compile(r"\.(?<= [A-Za-z]\.)")
# Cheap tests, starting at a ".", that a rule which cannot start there has something to do at all.
_MAYBE_DECIMAL = re.compile(r"\.(?<=[0-9]\.)[0-9]")
_MAYBE_INITIAL_SPACE = re.compile(r"\.(?<=\s[A-Za-z]\.) ")
_MAYBE_ACRONYM = re.compile(r"\.(?<=[A-Z]\.[A-Z]\.) ")


def _marked(text):
    """`text` with each protected "." replaced by PRD and a STOP after each break the rules make (ellipses,
    acronyms and company suffixes before a sentence starter); the plain . ? ! breaks are not marked yet."""
    t = " " + text.replace("\n", " ") + "  "
    t = _TITLE_OR_SITE.sub(_PRD, t)
    if _MAYBE_DECIMAL.search(t):
        t = _DECIMAL.sub(r"\1" + _PRD + r"\2", t)
    if ".." in t:
        t = _ELLIPSIS_TAIL.sub(_RUN + _PRD + _STOP, _ELLIPSIS_HEAD.sub(_RUN, t)).replace(_RUN, _PRD)
    if "Ph.D" in t:
        t = t.replace("Ph.D.", "Ph" + _PRD + "D" + _PRD)
    if _MAYBE_INITIAL_SPACE.search(t):
        t = _INITIAL_SPACE.sub(r" \1" + _PRD + " ", t)
    if _MAYBE_ACRONYM.search(t):
        t = _ACRONYM_STARTER.sub(r"\1" + _STOP + r" \2", t)
    t = _THREE_LETTERS.sub(_PRD + r"\1" + _PRD + r"\2" + _PRD, t)
    t = _TWO_LETTERS.sub(_PRD + r"\1" + _PRD, t)
    suffixes = [suffix for suffix in _SUFFIXES if suffix in t]
    if any(suffix + " " in t for suffix in suffixes):
        t = _SUFFIX_STARTER.sub(r" \1" + _STOP + r" \2", t)  # the reference drops this "."
    for suffix in suffixes:
        t = t.replace(suffix, suffix[:-1] + _PRD)
    return _SPACE_INITIAL.sub(_PRD, t)


def ifbench_sentences(text):
    """Sentences of `text` as IFBench's reference splits them (stripped; no empty last one)."""
    t = _marked(text).replace(".\u201d", "\u201d.")
    t = t.replace('."', '".').replace('!"', '"!').replace('?"', '"?')
    t = t.replace(".", "." + _STOP).replace("?", "?" + _STOP).replace("!", "!" + _STOP)
    sentences = [s.strip() for s in t.replace(_PRD, ".").split(_STOP)]
    if sentences and not sentences[-1]:
        sentences.pop()
    return sentences


def sentence_end_counts(text):
    """How many of ifbench_sentences(text) end with ".", "?" and "!", without splitting: every "?" and "!"
    ends a sentence; a sentence ends with "." after each unprotected ".", after each rule-made break that
    follows a protected one, and at the end of the text if it ends with a protected one."""
    t = _marked(text)
    periods = t.count(".") + t.count(_PRD + _STOP) + t.rstrip().endswith(_PRD)
    return periods, text.count("?"), text.count("!")


# The rules only look a few characters around a ".", except across whitespace after one: a window of the
# text that ends at whitespace not preceded by "." is split exactly like the whole text, up to its last,
# possibly unfinished, sentence.
_SAFE_CUT = re.compile(r"(?<!\.)\s")


def iter_ifbench_sentences(text, window=1024):
    """ifbench_sentences(text), one at a time, from growing windows: a caller that stops early pays for a
    prefix only; one that reads them all pays about 1.3 times a whole split."""
    done = 0
    while window < len(text):
        cut = _SAFE_CUT.search(text, window)
        if cut is None:
            break
        sentences = ifbench_sentences(text[:cut.start()])
        yield from sentences[done:-1]  # the last one may continue past the cut
        done = max(done, len(sentences) - 1)
        window *= 4
    yield from ifbench_sentences(text)[done:]


def first_ifbench_sentences(text, n):
    """The first `n` of ifbench_sentences(text) (fewer if it has fewer)."""
    return list(itertools.islice(iter_ifbench_sentences(text), n))


# --- NLTK's word_tokenize --------------------------------------------------------------------------
# NLTKWordTokenizer is a sequence of regular-expression rewrites of one sentence, then a split on spaces.
# Most rules only look at a character or two, so we run each once over many sentences joined by _SEP (a
# non-word, non-space character no rule matches), the rules anchored at a sentence's end written to stop at
# _SEP too. The rule "final period without the space class" is left out: after the rule before it, it can
# only re-pad a period that is already separate. Word characters and spaces are Python's `re` ones: NLTK
# 3.10 moved to the `regex` module, whose \w also matches combining marks (the emoji variation selector
# U+FE0F) and whose \s leaves out U+001C-U+001F, so a text with those can tokenize differently there.

_SEP = "\ue002"


class _Pad:
    """A rule that puts a space on each side of every one of `chars`: str.translate, the same result as
    re.sub("[chars]", r" \\g<0> ") (on Python 3.11 a template with a group costs a Python call per match,
    which made a text of a million brackets slow)."""

    def __init__(self, chars):
        self.table = str.maketrans({c: f" {c} " for c in chars})

    def sub(self, repl, text):
        return text.translate(self.table)


_END = r"(?=\n?(?:\ue002|\Z))"  # a sentence's `$`: its end, or before a newline that ends it
_TB_START = [  # starting quotes (the leading '"' -> "``" rule runs per sentence, before these)
    (re.compile("([\u00ab\u201c\u2018\u201e]|[`]+)"), r" \1 "),
    (re.compile(r"(``)"), r" \1 "),
    (re.compile(r"([ \(\[{<])(\"|\'{2})"), r"\1 `` "),
    (re.compile(r"(?i)(?<!\w)(\')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)"), r"\1 "),
]
_TB_MIDDLE = [  # the final period (and closing brackets, quotes, spaces after it), punctuation, dashes
    # an atomic group written as lookahead + backreference: a long run of spaces cannot make it backtrack
    (re.compile(r'([^\.\ue002])(\.)(?=([\]\)}>"\'\u00bb\u201d\u2019 ]*))\3\s*' + _END), r"\1 \2 \3 "),
    (re.compile(r"([:,])" + _END), r" \1 "),
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),
    (re.compile(r"\.{2,}"), r" \g<0> "),
    (_Pad(";@#$%&\u2012\u2013\u2014\u2015?!"), None),
    (re.compile(r"([^'])' "), r"\1 ' "),
    (_Pad("*][(){}<>"), None),
    (re.compile(r"--"), r" -- "),
]
_TB_END = [  # ending quotes, clitics and split contractions ("cannot" -> "can not")
    (_Pad("\u00bb\u201d\u2019"), None),
    (re.compile(r"''"), " '' "),
    (re.compile(r'"'), " '' "),
    (re.compile(r"\s+"), " "),
    (re.compile(r"(?<=[^' ])('[sS]|'[mM]|'[dD]|') "), r" \1 "),
    (re.compile(r"(?<=[^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r" \1 "),
    (re.compile(r"(?i)\b(?:(can)(not)|(d)('ye)|(gim)(me)|(gon)(na)|(got)(ta)|(lem)(me)|(more)('n))\b"),
     lambda m: " " + " ".join(g for g in m.groups() if g) + " "),
    (re.compile(r"(?i)\b(wan)(na)(?=\s)"), r" \1 \2 "),
    (re.compile(r"(?i) ('t)(is|was)\b"), r" \1 \2 "),
]


def _rewrite(text):
    for pattern, repl in _TB_START + _TB_MIDDLE:
        text = pattern.sub(repl, text)
    text = " " + text.replace(_SEP, " ") + " "
    for pattern, repl in _TB_END:
        text = pattern.sub(repl, text)
    return text.split()


def treebank_tokens(sentences):
    """NLTK's NLTKWordTokenizer applied to each sentence, tokens concatenated (a U+E002 in the text, our
    separator, counts as a space)."""
    sentences = [("``" + s[1:] if s.startswith('"') else s).replace(_SEP, " ") for s in sentences]
    return _rewrite(_SEP.join(sentences))


def word_tokens(text):
    """NLTK's word_tokenize(text): Punkt sentences (text.py's), then Treebank tokens."""
    return treebank_tokens(split_sentences(text))


def iter_word_token_batches(text, chunk_chars=256):
    """word_tokens(text) in lists, a few sentences at a time (chunks of growing size), so a caller can stop
    early."""
    batch, size = [], 0
    for s in iter_sentences(text):
        batch.append(s)
        size += len(s)
        if size >= chunk_chars:
            yield treebank_tokens(batch)
            batch, size, chunk_chars = [], 0, min(4 * chunk_chars, 1 << 16)
    yield treebank_tokens(batch)


def iter_word_tokens(text, chunk_chars=256):
    """word_tokens(text), one at a time (see iter_word_token_batches)."""
    for tokens in iter_word_token_batches(text, chunk_chars):
        yield from tokens


# A long sentence's first tokens come from two prefixes of it, the second twice as long: both tokenize as
# the whole sentence except near their ends, so the tokens they share are the sentence's. (Rules reach a
# few characters, or along a run of dots, backquotes or spaces, or, from a sentence's end, back over a final
# period and closing brackets: a prefix ends after a character none of those start from.) The last tokens
# come from two suffixes the same way.
_PREFIX_END = re.compile(r"[\w\[({<*?!;@#$%&]")


def _common_start(a, b):
    k = 0
    while k < len(a) and k < len(b) and a[k] == b[k]:
        k += 1
    return a[:k]


def _sentence_head(sentence, n, size=256):
    while 2 * size < len(sentence):
        short, long = (_PREFIX_END.search(sentence, k) for k in (size, 2 * size))
        if short is None or long is None or long.end() > 4 * size:
            break  # no safe end near the planned one (a run of spaces, brackets...): tokenize the sentence once
        tokens = _common_start(treebank_tokens([sentence[:short.end()]]), treebank_tokens([sentence[:long.end()]]))
        if len(tokens) >= n:
            return tokens
        size *= 4
    return treebank_tokens([sentence])


def _sentence_tail(sentence, n, size=256):
    while 2 * size < len(sentence):
        short, long = (treebank_tokens([sentence[-k:]])[::-1] for k in (size, 2 * size))
        tokens = _common_start(short, long)[::-1]
        if len(tokens) >= n:
            return tokens
        size *= 4
    return treebank_tokens([sentence])


def head_tokens(text, n):
    """word_tokens(text)[:n], reading only as much of the text as that needs."""
    tokens = []
    for sentence in iter_sentences(text):
        tokens += _sentence_head(sentence, n - len(tokens))
        if len(tokens) >= n:
            return tokens[:n]
    return tokens


def tail_tokens(text, n):
    """word_tokens(text)[-n:], reading only as much of the text as that needs."""
    k = 1
    while True:
        sentences, tokens = last_sentences(text, k), []
        for sentence in reversed(sentences):
            tokens = _sentence_tail(sentence, n - len(tokens)) + tokens
            if len(tokens) >= n:
                return tokens[-n:]
        if len(sentences) < k:
            return tokens
        k *= 4


_SPACE = re.compile(r"\s")


def last_sentences(text, n=1):
    """The last `n` Punkt-like sentences of `text`, without splitting all of it: a window that starts after
    whitespace is split like the whole text from its third sentence on (only the first break decision can
    look at what comes before the window)."""
    window = 1024
    while window < len(text):
        cut = _SPACE.search(text, len(text) - window)
        if cut is None:
            break
        sentences = split_sentences(text[cut.end():])
        if len(sentences) >= n + 2:
            return sentences[-n:]
        window *= 4
    return split_sentences(text)[-n:]


# --- stop words ------------------------------------------------------------------------------------
# NLTK's English stop-word list (nltk_data corpora/stopwords/english), the entries without an apostrophe.
STOP_WORDS = frozenset("""
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
herself it its itself they them their theirs themselves what which who whom this that these those am is
are was were be been being have has had having do does did doing a an the and but if or because as until
while of at by for with about against between into through during before after above below to from up down
in out on off over under again further then once here there when where why how all any both each few more
most other some such no nor not only own same so than too very s t can will just don should now d ll m o re
ve y ain aren couldn didn doesn hadn hasn haven isn ma mightn mustn needn shan shouldn wasn weren won wouldn
""".split())

_WORD = re.compile(r"\w+")


def stop_word_share(text):
    """(stop words, words) among r"\\w+" tokens, matched case-insensitively."""
    words = _WORD.findall(text)  # split first: lower-casing can change what a word character is ("İ")
    return sum(1 for w in words if w.lower() in STOP_WORDS), len(words)


# --- syllables ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def syllable_parity(word):
    """syllapy's syllable count of `word` (its dictionary, then its rules), odd (1) or even (0)."""
    import syllapy  # the package the reference uses, with its word list: offline

    return syllapy.count(word) % 2


def clear_caches():
    """Forget memoised results (benchmarks call this so that no pass reuses an earlier one's work)."""
    syllable_parity.cache_clear()


# --- does the text start with a verb? --------------------------------------------------------------


def starts_with_verb(text):
    """Is the first word token of `text` tagged as a verb (Penn tag VB*)? pos_tagger.py decides which tagger:
    NLTK's perceptron model when its files are found (the reference's verdicts), else TextBlob's."""
    return first_is_verb(head_tokens(text, 8))  # NLTK's first tag needs 3 tokens; TextBlob's reads a few more
