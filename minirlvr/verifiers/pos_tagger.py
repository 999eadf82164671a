"""Does a token sequence start with a verb? The part-of-speech decision behind IFBench's words:start_verb.

IFBench's reference tags the response's word tokens with NLTK's averaged perceptron tagger (Honnibal's
design: a greedy left-to-right perceptron over a handful of word, suffix and previous-tag features) and
asks whether the first tag contains "VB". Two taggers here:
- "nltk": NLTK's trained English model, read from its three JSON files (NLTK >= 3.9's format,
  taggers/averaged_perceptron_tagger_eng/ in an nltk_data folder) and applied to the first token with the
  same features, the same float sums in the same order and the same tie-break, so its first tag is the one
  `nltk.pos_tag` gives (the first tag depends only on the first three tokens). The model is data, not code:
  this module reads it but needs no nltk install. This path gives the reference's verdicts.
- "textblob": the offline fallback when the model is not found: TextBlob's bundled Brill-style tagger
  (Pattern's lexicon and contextual rules, shipped in its wheel), first word lower-cased, plus one rule of
  ours for sentence-initial imperatives ("Answer the question"). An approximation: it calls some sentence
  openers verbs that NLTK's model calls nouns or adjectives ("Conceive", "Understand", "Build").
Where the model is looked for, in order: select(nltk_data=...); each folder of the NLTK_DATA environment
variable; nltk's own search path when nltk is installed (~/nltk_data, /usr/share/nltk_data, ...), else
~/nltk_data. `describe()` says which tagger is in use. Deliberately NOT done: downloading the model, reading
NLTK's older pickle or zip packagings, tagging beyond the first token.
"""

import functools
import json
import os
import warnings

MODEL = os.path.join("taggers", "averaged_perceptron_tagger_eng")
_FILES = ("weights", "tagdict", "classes")
_START, _START2, _END, _END2 = "-START-", "-START2-", "-END-", "-END2-"

_choice = {"source": "auto", "nltk_data": None}


def select(source="auto", nltk_data=None):
    """Choose the tagger: "auto" (NLTK's model if found, else TextBlob), "nltk" (NLTK's model; a clear error
    if it is not found) or "textblob". `nltk_data`: an nltk_data folder (or the model folder itself) to look
    in before the usual places."""
    if source not in ("auto", "nltk", "textblob"):
        raise ValueError(f"pos tagger source must be 'auto', 'nltk' or 'textblob', not {source!r}")
    _choice.update(source=source, nltk_data=None if nltk_data is None else os.fspath(nltk_data))
    _tagger.cache_clear()


def _given_folders():
    folders = [_choice["nltk_data"]] if _choice["nltk_data"] else []
    return folders + [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]


def _default_folders():
    try:
        import nltk.data  # its default folders, and any the caller added to nltk.data.path (imports all of nltk)
        return [p for p in nltk.data.path if isinstance(p, str)]
    except ImportError:
        return [os.path.expanduser("~/nltk_data")]


def search_path():
    """The folders searched for NLTK's model, in order."""
    return list(dict.fromkeys(_given_folders() + _default_folders()))


def find_model():
    """The folder holding NLTK's English perceptron model, or None. nltk's own folders are only asked for
    (importing nltk, about a second) when the given ones do not hold it."""
    for folders in (_given_folders, _default_folders):
        for folder in folders():
            for cand in (os.path.join(folder, MODEL), folder):
                if all(os.path.isfile(_model_file(cand, f)) for f in _FILES):
                    return cand
    return None


def _model_file(folder, part):
    return os.path.join(folder, f"averaged_perceptron_tagger_eng.{part}.json")


class PerceptronTagger:
    """NLTK's averaged perceptron model, for the tag of a sequence's first token."""

    def __init__(self, folder):
        self.folder = folder
        parts = {}
        for part in _FILES:
            path = _model_file(folder, part)
            try:
                with open(path, encoding="utf-8") as f:
                    parts[part] = json.load(f)
            except (OSError, ValueError) as e:
                raise ValueError(f"{path}: not a readable NLTK tagger file ({e})") from None
        self.weights, self.tagdict, self.classes = parts["weights"], parts["tagdict"], parts["classes"]
        if not (isinstance(self.weights, dict) and isinstance(self.tagdict, dict) and isinstance(self.classes, list)):
            raise ValueError(f"{folder}: the weights and tagdict files must hold JSON objects, the classes file a "
                             f"list")

    @staticmethod
    def normalize(word):
        """The model's word feature: hyphenated words, years and numbers collapse to one symbol each."""
        if "-" in word and word[0] != "-":
            return "!HYPHEN"
        if word.isdigit() and len(word) == 4:
            return "!YEAR"
        if word[:1].isdigit():
            return "!DIGITS"
        return word.lower()

    def first_tag(self, tokens):
        """The tag NLTK's tagger gives tokens[0] (None for no tokens). Only tokens[:3] matter: the features
        of position 0 are its word, the two words after it, and the sentence-start markers."""
        if not tokens:
            return None
        word = tokens[0]
        tag = self.tagdict.get(word)  # words with one unambiguous tag in training, looked up as written
        if tag:
            return tag
        ctx = [self.normalize(w) for w in tokens[:3]] + [_END, _END2]
        features = [  # the model's feature names, in the order the scores are summed (float sums must match)
            "bias", "i suffix " + word[-3:], "i pref1 " + word[:1], "i-1 tag " + _START, "i-2 tag " + _START2,
            f"i tag+i-2 tag {_START} {_START2}", "i word " + ctx[0], f"i-1 tag+i word {_START} {ctx[0]}",
            "i-1 word " + _START2, "i-1 suffix " + _START2[-3:], "i-2 word " + _START,
            "i+1 word " + ctx[1], "i+1 suffix " + ctx[1][-3:], "i+2 word " + ctx[2]]
        scores = {}
        for feature in features:
            for label, weight in self.weights.get(feature, {}).items():
                scores[label] = scores.get(label, 0.0) + weight
        return max(self.classes, key=lambda label: (scores.get(label, 0.0), label))  # ties: the later label

    def describe(self):
        return f"nltk: NLTK's averaged perceptron model in {self.folder} (the reference's tagger)"


# Tokens after which a sentence-initial noun/verb homograph is read as an imperative: "Answer the
# question", "Water your plants". TextBlob's tagger alone reads them as nouns.
_IMPERATIVE_OBJECTS = frozenset("the a an this that these those my your our their his her its me us them him "
                                "it every each all some".split())


class TextBlobTagger:
    """TextBlob's bundled tagger with our imperative rule: the offline approximation."""

    def __init__(self, why):
        from textblob.en import tag  # Pattern's lexicon and rules, in the wheel

        self.tag, self.why = tag, why

    def first_tag(self, tokens):
        if not tokens or not tokens[0][:1].isalpha():
            return None
        words = [tokens[0].lower()] + list(tokens[1:])  # the lexicon knows sentence-initial "Run" as a name
        tags = [t for _, t in self.tag(" ".join(w.replace(" ", "") for w in words), tokenize=False)]
        if not tags:
            return None
        if tags[0] == "NN" and len(tokens) > 1 and tokens[1].lower() in _IMPERATIVE_OBJECTS:
            return "VB"
        return tags[0]

    def describe(self):
        return f"textblob: TextBlob's bundled tagger, an approximation of the reference's ({self.why})"


@functools.lru_cache(maxsize=1)
def _tagger():
    source = _choice["source"]
    if source == "textblob":
        return TextBlobTagger("chosen with select('textblob')")
    folder = find_model()
    if folder is not None:
        return PerceptronTagger(folder)
    missing = f"NLTK's {MODEL} not found in {os.pathsep.join(search_path()) or 'no folder'}"
    if source == "nltk":
        raise FileNotFoundError(f"{missing}; set NLTK_DATA or pass nltk_data= to select()")
    warnings.warn(f"words:start_verb: {missing}; using TextBlob's tagger, whose verdicts can differ from "
                  f"IFBench's reference (set NLTK_DATA to a folder with NLTK's tagger model)", stacklevel=2)
    return TextBlobTagger(missing)


def describe():
    """Which tagger words:start_verb uses, and why (loads it)."""
    return _tagger().describe()


def first_is_verb(tokens):
    """Is the first of `tokens` (word_tokenize's tokens; the first few suffice) tagged as a verb (VB*)?"""
    tag = _tagger().first_tag(tokens)
    return tag is not None and "VB" in tag
