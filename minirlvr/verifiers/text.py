"""Offline text measurements the verifiers share: words, sentences, upper-case words, language.

The IFEval reference counts sentences with NLTK's trained Punkt model and upper-case words with NLTK's
Treebank tokenizer, both of which need downloaded data. Here both are small rule sets written to give
the same counts on real model responses: on IFEval's GPT-4 responses and their loose variants, the
sentence count equals Punkt's on 2143 of 2164 texts and the upper-case word count equals NLTK's on all
of them (tests/test_ifeval_agreement.py). What is deliberately NOT reproduced: Punkt's 20k-word orthographic table and its
collocation list; we keep the rules that decide real responses (abbreviations, initials, numbered
lists, ellipses, closing quotes) and say "sentence starter" for a short list of function words.

Every function here is linear in the input: no regular expression can backtrack catastrophically.
Language identification is langdetect (Shuyo 2010) with a fixed seed, on a private factory so we
never change the global `langdetect.DetectorFactory.seed` of the caller.
"""

import functools
import re

import numpy as np

# --- words -----------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


def count_words(text):
    """IFEval's word count: runs of word characters (letters, digits, underscore), any script."""
    return len(_WORD.findall(text))


# --- sentences (Punkt-like) ------------------------------------------------------------------------
# Punkt (Kiss & Strunk 2006) decides at each '.', '?' or '!' that is followed by whitespace and another
# token, or directly by punctuation that cannot be part of a word. We keep its two passes:
#   1) a token ending in '.' is a break unless it is a known abbreviation or an ellipsis;
#   2) the next token can undo that: after an initial ("J.") or a number ("3."), a lower-case word or
#      a comma means "not a break"; after an abbreviation, a capitalised sentence starter means "break".

# Lower-cased abbreviations (without their final period) that do not end a sentence. Like the English
# Punkt model, "e.g", "i.e" and "etc" are NOT here: the reference splits after them, and we agree with it.
# The single letters are those the reference treats as abbreviations ("c. 1900", "p. 12"): after them
# it never splits, while after other initials it splits unless a name follows.
ABBREVIATIONS = frozenset("""
mr mrs ms dr prof st jr sr messrs rev gen col capt lt maj adm sen rep reps gov
inc ltd co corp cos bros cie vs ave ft mg yr
jan feb aug sep sept oct nov dec tues wed fri
c d e f g h k l m n p r s t v w
u.s u.s.a u.k u.n a.m p.m ph.d m.d m.b.a d.c n.y l.a a.d
""".split())

# Capitalised words that start a sentence even right after an abbreviation or ellipsis.
SENTENCE_STARTERS = frozenset("""
the a an this these that those there then it its he she they we i you his her their our my
but and so yet however although though while when if in on at for since despite moreover meanwhile
nevertheless nonetheless thus instead indeed similarly both most many some even according
""".split())

_NON_WORD = ")\";}]*:@'({[\u2018\u2019\u201c\u201d\xab\xbb?!"  # can never be inside a word
_NOT_WORD_START = "(\"`{[:;&#*@)}]-,"  # split off the front of a word
_CLOSERS = "\"')]}\u2018\u2019\u201c\u201d\xab\xbb"  # move onto the sentence they close
_ENDERS = ".?!"
_NUMBER = re.compile(r"-?[.,]?\d[\d,.\-]*\.?")
_ELLIPSIS = re.compile(r"\.\.+")
_CLOSER_RUN = re.compile("[" + re.escape(_CLOSERS) + r"]+?(?:\s+|(?=--)|$)")
_NW = re.escape(_NON_WORD)
# Punkt's word tokens: a run of dots or dashes; or a word, which keeps a final period ("Dr.") but stops
# before non-word punctuation, a run of dots or dashes, or a comma that ends it; or any other character.
_TOKEN = re.compile(
    rf"\.\.+|--+|(?:\.\s){{2,}}\."
    rf"|[^\s{re.escape(_NOT_WORD_START)}](?:(?!\.\.|--|,(?:\s|$|[{_NW}]|\.\.|--))[^\s{_NW}])*"
    rf"|\S")
# A possible sentence end: an end mark followed by non-word punctuation or by whitespace and a token.
_END_MARK = rf"[.?!](?=[{_NW}]|\s+\S)"
# The last possible end of a whitespace-free chunk: no other one before the next whitespace. The lookahead
# stops at the next possible end or whitespace, so the scans of consecutive marks do not overlap: linear.
_LAST_MARK = re.compile(rf"{_END_MARK}(?=(?:[^\s.?!]|[.?!](?![{_NW}]|\s+\S))*(?:\s|\Z))")
_UP_TO_LAST_SPACE = re.compile(r"(?s).*\s")
_NEXT_TOKEN = re.compile(r"\s+(\S+)")


_KINDS = {}  # short token -> its kind: a text repeats its abbreviations, numbers and marks


def _kind(tok):
    """_classify(tok), remembered for short tokens (the per-mark work is the splitter's whole cost on texts
    dense in end marks, such as a run of "P.S. ")."""
    kind = _KINDS.get(tok)
    if kind is None:
        kind = _classify(tok)
        if len(tok) <= 24 and len(_KINDS) < 65536:
            _KINDS[tok] = kind
    return kind


def _classify(tok):
    """'break' (a bare end mark), 'ellipsis', 'number', 'initial', 'never' (an initial that is also an
    abbreviation), 'abbrev', 'period' (any other word ending in '.') or 'other'."""
    if tok[-1] not in _ENDERS:
        return "other"
    if tok in _ENDERS:
        return "break"
    if _ELLIPSIS.fullmatch(tok):
        return "ellipsis"
    if tok[-1] != "." or tok.endswith(".."):
        return "other"
    if _NUMBER.fullmatch(tok):
        return "number"
    stem = tok[:-1].lower()
    if len(tok) == 2 and tok[0].isalpha():
        return "never" if stem in ABBREVIATIONS else "initial"
    if stem in ABBREVIATIONS or stem.split("-")[-1] in ABBREVIATIONS:
        return "abbrev"
    return "period"


def _is_break(tok, nxt, begins_line):
    """Does the token `tok` end a sentence, given the token `nxt` after it? `begins_line`: does `tok` begin a
    line (an initial there is an outline marker, "A. Brief history", not part of a name)?"""
    kind = _kind(tok)
    if kind in ("other", "never"):
        return False
    if kind in ("break", "period"):
        return True
    nxt_word = nxt[:-1] if nxt.endswith(".") else nxt
    starter = nxt[:1].isupper() and nxt_word.lower() in SENTENCE_STARTERS
    if kind in ("abbrev", "ellipsis"):
        return starter
    # a number or an initial
    if nxt in ";:,.!?" or nxt[:1].islower():
        return False
    if kind == "initial" and tok[0].isupper() and nxt[:1].isupper() and not starter and not begins_line:
        return False  # "J. Smith": a capitalised name after a capital initial
    return True


def _begins_line(text, i):
    """Is the chunk starting at `i` the first on its line?"""
    while i and text[i - 1].isspace():
        if text[i - 1] == "\n":
            return True
        i -= 1
    return i == 0


def _breaks(text):
    """(end, next sentence start) of each sentence break, the way Punkt finds them: at the last end mark
    of a whitespace-free chunk that is followed by non-word punctuation or by another chunk, if a token
    of the context (the chunk up to the mark, plus that punctuation or the next chunk) but the last ends
    a sentence (Punkt's text_contains_sentbreak)."""
    prev = chunk_start = 0
    for m in _LAST_MARK.finditer(text):
        c = m.start()
        space = _UP_TO_LAST_SPACE.match(text, prev, c)  # the chunk starts after the last space before c
        if space:
            chunk_start = space.end()
        prev = c
        nxt = _NEXT_TOKEN.match(text, c + 1)
        context = text[chunk_start:c + 1] + " " + nxt.group(1) if nxt else text[chunk_start:c + 2]
        if _context_breaks(context, _begins_line(text, chunk_start)):
            yield c + 1, (nxt.start(1) if nxt else c + 1)


_DECISIONS = {}  # (short context, begins a line) -> break? Texts repeat their contexts ("e.g. the", "P.S. I")


def _context_breaks(context, begins_line):
    """Does a token of `context` but the last end a sentence? `begins_line`: whether its first token begins a
    line. Remembered for short contexts: on texts dense in end marks this decision is the splitter's cost."""
    key = (context, begins_line)
    out = _DECISIONS.get(key)
    if out is None:
        tokens = _TOKEN.findall(context)
        out = any(_is_break(tokens[j], tokens[j + 1], begins_line and j == 0) for j in range(len(tokens) - 1))
        if len(context) <= 48 and len(_DECISIONS) < 65536:
            _DECISIONS[key] = out
    return out


def _spans(text):
    start = 0
    for end, next_start in _breaks(text):
        yield start, end
        start = next_start
    yield start, len(text.rstrip())


def iter_sentences(text):
    """Sentences of `text`, the way NLTK's English Punkt model splits them (closely; see module doc), one
    at a time: a caller that needs only the first few stops early (the end-mark scan is the only whole-text
    pass)."""
    spans = _spans(text)
    a, b = next(spans)
    for a2, b2 in spans:
        # Closing quotes and brackets after the end mark belong to the sentence they close.
        m = _CLOSER_RUN.match(text, a2, b2)
        if m:
            b, a2 = a2 + len(m.group(0).rstrip()), m.end()
        if a < b:
            yield text[a:b]
        a, b = a2, b2
    if a < b:
        yield text[a:b]


def split_sentences(text):
    """Sentences of `text`, the way NLTK's English Punkt model splits them (closely; see module doc)."""
    return list(iter_sentences(text))


def count_sentences(text):
    return len(split_sentences(text))


# --- upper-case words (Treebank-like) --------------------------------------------------------------
# IFEval counts NLTK word_tokenize tokens for which str.isupper() holds. Only splits that separate two
# cased parts change that count, so we reproduce just those: punctuation that Treebank always splits
# off, ',' and ':' not followed by a digit, '--', and the clitics 's 'm 'd 'll 're 've n't.

_TB_SPLIT = re.compile(r"""[;@#$%&?!\[\](){}<>"`]|--|\.\.+|[:,](?!\d)""")
_CLITIC = re.compile(r"(?<=[^' ])('[sSmMdD]|'ll|'LL|'re|'RE|'ve|'VE|n't|N'T)$")
_FUSED = re.compile(r"(?i)^(can)(not)$|^(gon)(na)$|^(got)(ta)$|^(wan)(na)$|^(gim)(me)$|^(lem)(me)$")


def _treebank_pieces(text):
    for chunk in _TB_SPLIT.sub(" ", text).split():
        chunk = chunk.rstrip(".'") or chunk
        m = _FUSED.match(chunk)
        if m:
            yield from (g for g in m.groups() if g)
            continue
        m = _CLITIC.search(chunk)
        if m:
            yield chunk[:m.start()]
            yield m.group(1)
        else:
            yield chunk


def count_upper_words(text):
    """Number of words written in capitals ("NASA", "I", "DON'T" counts as DO + N'T, like Treebank)."""
    return sum(1 for piece in _treebank_pieces(text) if piece.isupper())


# --- language --------------------------------------------------------------------------------------
# langdetect's detect() dominates IFEval scoring time. We keep its exact algorithm, profiles and seed
# and only make it cheaper: text cleaning as regular expressions, n-gram extraction word by word with
# repeated words memoised, each naive-Bayes update as one numpy multiply over the languages instead of a
# Python loop, and no trials after the answer is decided. Every float operation is the same IEEE operation
# in the same order, so the answer is identical to langdetect.detect with seed 0
# (tests/test_ifeval_agreement.py checks it on IFEval's responses).


_SPACES = re.compile(" +")
_LATIN = re.compile("[A-z]")  # langdetect's 'A' <= ch <= 'z', which includes [ \\ ] ^ _ `
_NON_LATIN = re.compile("[\u0300-\U0010ffff]")


class _NormalizeTable(dict):
    def __init__(self, normalize):
        super().__init__()
        self.normalize = normalize

    def __missing__(self, code):
        self[code] = out = self.normalize(chr(code))
        return out


class _Langdetect:
    def __init__(self):
        from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
        from langdetect.utils.ngram import NGram

        self.factory = DetectorFactory()  # private factory: the caller's global seed is left alone
        self.factory.load_profile(PROFILES_DIRECTORY)
        self.factory.set_seed(0)  # langdetect samples n-grams at random; a fixed seed makes it a function
        self.proto = self.factory.create()  # a Detector, for langdetect's constants and settings
        self.normalize_vi = NGram.normalize_vi
        self.word_probs = self.factory.word_lang_prob_map  # n-gram -> [p(n-gram | language)]
        self.rows = {}  # n-gram -> the same as a numpy array, converted on first use
        self.table = _NormalizeTable(NGram.normalize)  # str.translate table, filled on demand
        self.word_grams = functools.lru_cache(maxsize=100_000)(self._word_grams)

    def ngrams(self, text):
        """langdetect's Detector._extract_ngrams, word by word: the grams of a word depend only on the
        word and on whether a space follows it, so repeated words are looked up, not rescanned."""
        words = text.translate(self.table).split(" ")
        out = []
        for k, word in enumerate(words):
            if word:
                out.extend(self.word_grams(word, k + 1 < len(words)))
        return out

    def _word_grams(self, word, spaced):
        """The known 1-, 2- and 3-grams ending at each character of " word" (+ " " if `spaced`), in
        order; none end on a capital that follows a capital (langdetect skips words in capitals)."""
        s, probs, out = " " + word + (" " if spaced else ""), self.word_probs, []
        for k in range(1, len(s)):
            if s[k].isupper() and s[k - 1].isupper():
                continue
            for n in range(1, min(3, k + 1) + 1):
                w = s[k - n + 1:k + 1]
                if w != " " and w in probs:
                    out.append(w)
        return out

    def row(self, w):
        r = self.rows.get(w)
        if r is None:
            r = self.rows[w] = np.array(self.word_probs[w])
        return r

    def clean(self, text):
        """Detector.append + Detector.cleaning_text as regular expressions: URLs and e-mails blanked,
        Vietnamese diacritics composed, the first 10k characters kept, runs of spaces collapsed; if
        non-Latin characters (>= U+0300) outnumber Latin ones ('A'..'z') twice, the Latin ones go.
        (langdetect means to exempt Latin Extended Additional there, but compares a block number with a
        block name, so it never does; neither do we.)"""
        d = self.proto
        text = self.normalize_vi(d.MAIL_RE.sub(" ", d.URL_RE.sub(" ", text)))
        text = _SPACES.sub(" ", text[:d.max_text_length])
        if 2 * len(_LATIN.findall(text)) < len(_NON_LATIN.findall(text)):
            text = _LATIN.sub("", text)
        return text

    def detect(self, text):
        import random

        d = self.proto
        ngrams = self.ngrams(self.clean(text))
        if not ngrams:
            return None
        n_lang, n_trial = len(d.langlist), d.n_trial
        langprob = np.zeros(n_lang)
        rng = random.Random()
        rng.seed(d.seed)
        for t in range(n_trial):
            prob = np.full(n_lang, 1.0 / n_lang)
            weight = (d.alpha + rng.gauss(0.0, 1.0) * d.ALPHA_WIDTH) / d.BASE_FREQ
            i = 0
            while True:
                prob *= weight + self.row(ngrams[rng._randbelow(len(ngrams))])  # = rng.choice(ngrams)
                if i % 5 == 0:
                    prob /= sum(prob.tolist())  # the builtin sum, as langdetect sums a Python list
                    if prob.max() > d.CONV_THRESHOLD or i >= d.ITERATION_LIMIT:
                        break
                i += 1
            langprob += prob / n_trial
            # Each later trial adds at most 1/n_trial to any language: once the leader's margin exceeds
            # what is left, the answer is decided and the remaining trials cannot change it.
            second, first = np.partition(langprob, -2)[-2:]
            if first - second > (n_trial - 1 - t) / n_trial + 1e-9:
                break
        best = int(np.argmax(langprob))  # the first of equals, as langdetect's stable sort
        return d.langlist[best] if langprob[best] > d.PROB_THRESHOLD else d.UNKNOWN_LANG


@functools.lru_cache(maxsize=1)
def _langdetect():
    return _Langdetect()


@functools.lru_cache(maxsize=16)
def detect_language(text):
    """ISO 639-1 code of `text` (langdetect, seeded), or None when there is nothing to detect from.

    Cached: loose scoring asks for the language of the same response variants several times."""
    return _langdetect().detect(text)


def clear_caches():
    """Forget every memoised result (benchmarks call this so that no pass reuses an earlier one's work)."""
    detect_language.cache_clear()
    _langdetect().word_grams.cache_clear()
    _KINDS.clear()
    _DECISIONS.clear()
