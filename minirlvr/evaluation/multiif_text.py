r"""Multi-IF's language-aware word and sentence counts (He et al. 2024, facebookresearch/Multi-IF `ifeval.py`).

Multi-IF keeps IFEval's verifiers but counts words and sentences by the language that langdetect finds in the
response (seeded, as evalscope's copy of the scorer seeds it; an undetectable text counts as English):
- Chinese and Japanese ("zh-cn", "zh-tw", "ja"): a word is each Han, kana or Hangul character, plus each
  whitespace-separated run of the rest and each emoji, after a fixed set of punctuation is deleted; sentences are
  runs of characters between `! ? 。 . ！ ？ ．` and line breaks, line by line.
- Thai ("th"): words are pythainlp's default tokens (newmm, whitespace kept); sentences are pythainlp's default
  sentence splits (crfcut) of each line. pythainlp is optional: without it a Thai count raises ThaiUnavailable.
- Hindi ("hi"): sentences end after `।`, `!` or `?`; words are counted as in English.
- every other language: IFEval's counts, runs of word characters and NLTK's English Punkt model's sentences, here
  the kit's Punkt-like splitter (minirlvr.verifiers.text, written for English) plus Punkt's rule that an initial
  before a capitalised word in another script ends no sentence (english_sentences).
Words are runs of `\w` as Python's `re` sees them, as NLTK's RegexpTokenizer(r"\w+") in the official code did up
to NLTK 3.9. NLTK 3.10 runs it on the `regex` engine, whose `\w` also takes combining marks, so under NLTK 3.10 the
official code counts Hindi (Devanagari) words about half as often; we keep the count Multi-IF was released with.

Written from the official code's documented behaviour, not copied; every rule here is linear in the text. What is
deliberately NOT the same: a Thai text (for sentences: a Thai line) over THAI_WHOLE_TEXT characters is tokenized
in chunks of about THAI_CHUNK characters, cut at whitespace where it can, and counting stops at the threshold
(pythainlp takes about a minute per megabyte): a cut inside a run without whitespace can move the count by a
token. pythainlp's dictionary changes between its versions, so Thai counts are only as reproducible as the
installed pythainlp. Chinese/Japanese words are also counted in pieces, but cut where nothing continues, so exactly.
"""

import re

from minirlvr.verifiers.text import count_words as english_words
from minirlvr.verifiers.text import detect_language, split_sentences

CJK_LANGUAGES = ("zh", "zh-cn", "zh-tw", "ja")
# Punctuation deleted before counting Chinese/Japanese words (the official character class, as a set).
CJK_DELETED = frozenset("\\.!?．/_,{}<>:;$%^&*(+\"'—！，。？、`~@#￥…（）：；《》“”()[]»〔〕-「」")
_CJK_DELETE = str.maketrans("", "", "".join(CJK_DELETED))
# Han (CJK Unified Ideographs and Extension A), hiragana and katakana, Hangul syllables: one word each.
_CJK_CHAR = re.compile("[\u4e00-\u9fff\u3400-\u4dbf\u3040-\u309f\u30a0-\u30ff\uac00-\ud7af]")
_CJK_CUT = re.compile("[\\s\u4e00-\u9fff\u3400-\u4dbf\u3040-\u309f\u30a0-\u30ff\uac00-\ud7af]")
PIECE = 10_000
CJK_SENTENCE_END = "!?。.！？．"
_CJK_SENTENCE = re.compile("[^" + re.escape(CJK_SENTENCE_END) + "\n]+")
_HINDI_SENTENCE_END = re.compile("[।!?]")
THAI_WHOLE_TEXT = 20_000  # longer Thai texts are tokenized piece by piece (see module doc)
THAI_CHUNK = 1_000
_THAI_PIECE = re.compile(r"\S{1,%d}\s*|\s+" % THAI_CHUNK)


class ThaiUnavailable(RuntimeError):
    """A Thai response needs a word or sentence count and pythainlp (with python-crfsuite) is not installed."""


def language(text):
    """langdetect's code for `text` (seed 0), "en" when nothing can be detected: the language the counts use."""
    return detect_language(text) or "en"


# --- Chinese and Japanese --------------------------------------------------------------------------


def _count_cjk_piece(text):
    import emoji

    text = text.translate(_CJK_DELETE)
    n_emoji = emoji.emoji_count(text)
    text = emoji.replace_emoji(text, "")
    n_cjk = len(_CJK_CHAR.findall(text))
    return n_cjk + len(_CJK_CHAR.sub(" ", text).split()) + n_emoji


def count_cjk_words(text, stop_at=None):
    """Each Han/kana/Hangul character is a word; so is each emoji and each whitespace-separated run of anything
    else, once the punctuation in CJK_DELETED is deleted. The text is counted in pieces of about PIECE
    characters cut before a space or a CJK character, where no word or emoji can continue (so the sum is exact);
    counting may stop once `stop_at` words are found (emoji's tokenizer takes about a second per megabyte)."""
    n, start = 0, 0
    while start < len(text):
        cut = _CJK_CUT.search(text, start + PIECE)
        end = len(text) if cut is None else cut.start()
        n += _count_cjk_piece(text[start:end])
        start = end
        if stop_at is not None and n >= stop_at:
            break
    return n


def count_cjk_sentences(text):
    """Per line (str.splitlines, then stripped), the runs of characters between sentence ends; a run of spaces
    between two ends counts, as in the official regex."""
    return sum(len(_CJK_SENTENCE.findall(line.strip())) for line in text.splitlines())


# --- Hindi -----------------------------------------------------------------------------------------


def count_hindi_sentences(text):
    """Pieces after each `।`, `!` or `?` (and at the end) that are not blank."""
    n, start = 0, 0
    for m in _HINDI_SENTENCE_END.finditer(text):
        n += bool(text[start:m.end()].strip())
        start = m.end()
    return n + bool(text[start:].strip())


# --- Thai ------------------------------------------------------------------------------------------


def _pythainlp():
    try:
        from pythainlp.tokenize import sent_tokenize, word_tokenize
    except ImportError as e:
        raise ThaiUnavailable("counting words or sentences of a Thai response needs pythainlp and python-crfsuite "
                              "(pip install pythainlp python-crfsuite), as Multi-IF's scorer uses them") from e
    return word_tokenize, sent_tokenize


def _thai_chunks(text):
    """Whitespace-delimited pieces joined up to about THAI_CHUNK characters; a run without whitespace longer than
    that is cut every THAI_CHUNK characters (the one place where a count can differ from the whole text's)."""
    chunk, size = [], 0
    for m in _THAI_PIECE.finditer(text):
        chunk.append(m.group())
        size += len(m.group())
        if size >= THAI_CHUNK:
            yield "".join(chunk)
            chunk, size = [], 0
    if chunk:
        yield "".join(chunk)


def count_thai_words(text, stop_at=None):
    """pythainlp's default word tokens, whitespace tokens included. Past THAI_WHOLE_TEXT characters the text is
    tokenized chunk by chunk (see _thai_chunks) and counting may stop once `stop_at` tokens are found (then the
    result is >= stop_at, which is all a comparison with stop_at needs)."""
    word_tokenize, _ = _pythainlp()
    if len(text) <= THAI_WHOLE_TEXT:
        return len(word_tokenize(text))
    n = 0
    for chunk in _thai_chunks(text):
        n += len(word_tokenize(chunk))
        if stop_at is not None and n >= stop_at:
            break
    return n


def count_thai_sentences(text, stop_at=None):
    """pythainlp's default sentence splits of each line (a line break always ends a sentence), a line longer than
    THAI_WHOLE_TEXT chunk by chunk; counting may stop once `stop_at` sentences are found."""
    _, sent_tokenize = _pythainlp()
    n = 0
    for line in text.splitlines():
        for part in [line] if len(line) <= THAI_WHOLE_TEXT else _thai_chunks(line):
            n += len(sent_tokenize(part))
            if stop_at is not None and n >= stop_at:
                return n
    return n


# --- every other language ------------------------------------------------------------------------------------

_INITIAL_END = re.compile(r"(?:^|\s)[^\W\d_]\.$")
_OPENERS = "\"'([{\u00ab\u201c\u201e\u2018\u300c"


def english_sentences(text):
    """The kit's Punkt-like count, plus one rule of NLTK's Punkt that the kit's rules, written for English, leave
    out: an initial (a letter and a period) does not end a sentence before a capitalised word that the English
    model has never seen in lower case, which every word in another script is ("Д. И. Менделеев", "1961 г. Юрий").
    Only capitals outside ASCII are taken for such words, so English text counts exactly as in IFEval."""
    sentences = split_sentences(text)
    n = len(sentences)
    for before, after in zip(sentences, sentences[1:]):
        first = after.lstrip(_OPENERS)[:1]
        if first.isupper() and not first.isascii() and _INITIAL_END.search(before):
            n -= 1
    return n


# --- dispatch --------------------------------------------------------------------------------------


def count_words(text, stop_at=None):
    """Multi-IF's word count of `text` in its detected language. `stop_at`: the caller only compares the count
    with this number, so a slow counter may stop there (the result is then >= stop_at)."""
    lang = language(text)
    if lang == "th":
        return count_thai_words(text, stop_at)
    if lang in CJK_LANGUAGES:
        return count_cjk_words(text, stop_at)
    return english_words(text)


def count_sentences(text, stop_at=None):
    """Multi-IF's sentence count of `text` in its detected language (`stop_at`: as in count_words)."""
    lang = language(text)
    if lang == "th":
        return count_thai_sentences(text, stop_at)
    if lang == "hi":
        return count_hindi_sentences(text)
    if lang in CJK_LANGUAGES:
        return count_cjk_sentences(text)
    return english_sentences(text)
