"""IFBench's out-of-domain constraints (Pyatkin et al. 2025, "Generalizing Verifiable Instruction
Following"), part 1: the count:*, ratio:*, words:*, sentence:* and repeat:* ids, with IFBench's kwargs
names and the verdicts of its reference `instructions.py`. ifbench_format.py has format:* and custom:*.

Written from the reference's behaviour, not copied; its quirks are kept where they decide a verdict, so
that scores match the benchmark's (each is named where it is implemented): e.g. count:conjunctions counts
"and" and "And," as two different conjunctions, ratio:sentence_type passes a text with no sentence
ending in "." or "?". Deliberate differences:
- kwargs are required and validated (the reference draws a missing or zero one at random: repeat:repeat_span
  with n_start=0, which IFBench's test set has, is scored against a random span there);
- where the reference raises (an empty sentence, an empty CSV field, a CSV field over the csv module's
  size limit), the verdict is False (True for format:quote_unquote, whose rule is vacuous there);
- words:start_verb tags with NLTK's perceptron model when its files are found (the reference's verdicts), and
  falls back to TextBlob's bundled tagger when they are not (pos_tagger.py);
- every check is linear in the response and stops as soon as its verdict is known.
"""

import functools
import re
from collections import Counter

import numpy as np

from . import registry
from .extra import word_range
from .ifeval import WORDS, plural
from .ifbench_text import (PUNCT, PUNCT_SPACE, clean_word, head_tokens, iter_ifbench_sentences, sentence_end_counts,
                           starts_with_verb, stop_word_share, strip_punct, syllable_parity, tail_tokens,
                           word_tokens)
from .registry import ALL, VerifierError

reg = functools.partial(registry.reg, source="ifbench")


def plain(iid, check, text, conflicts=()):
    """Register an id without kwargs: `check(response)` and one fixed instruction text."""
    reg(iid, {}, lambda r, kw, p: check(r), lambda kw: text, lambda rng, p: {}, conflicts=conflicts)


def _ordinal(n):
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _need_prompt(iid, field):
    def sample(rng, prompt):
        if not prompt:
            raise VerifierError(f"{iid}: kwarg {field!r} is sampled from the prompt; pass prompt=the request text")
        return prompt
    return sample


# --- count -----------------------------------------------------------------------------------------


def _word_count_range_sample(rng, p):
    low = rng.randint(20, 200)
    return {"min_words": low, "max_words": low + rng.randint(max(2, low // 20), max(4, low // 10))}


reg("count:word_count_range", {"min_words": "count", "max_words": "count"},
    word_range("count:word_count_range"),
    lambda kw: f"The response must contain between {kw['min_words']} and {kw['max_words']} words.",
    _word_count_range_sample,
    conflicts=("length_constraints:number_words", "length_constraints:word_count_range"))


def unique_words(text):
    """Lower-cased whitespace-split words without edge punctuation; "" counts too, as in the reference."""
    return {clean_word(w) for w in set(text.lower().split())}


reg("count:unique_word_count", {"N": "count"},
    lambda r, kw, p: len(unique_words(r)) >= kw["N"],
    lambda kw: f"Use at least {plural(kw['N'], 'unique word')} in the response.",
    lambda rng, p: {"N": rng.randint(20, 150)})

CONJUNCTIONS = ("and", "but", "for", "nor", "or", "so", "yet")
_P = re.escape(PUNCT)  # (words hold no space, so stripping " " too changes nothing)
# A whitespace-delimited word that is a conjunction in any letter case once edge punctuation is stripped.
_CONJUNCTION_WORD = re.compile(rf"(?<!\S)[{_P}]*(?:"
                               + "|".join("".join(f"[{c}{c.upper()}]" for c in w) for w in CONJUNCTIONS)
                               + rf")[{_P}]*(?!\S)")


def count_conjunctions(text):
    """Distinct coordinating conjunctions, where the reference's "distinct" is the raw word: "and", "And"
    and "and," are three."""
    return len(set(_CONJUNCTION_WORD.findall(text)))


reg("count:conjunctions", {"small_n": "count"},
    lambda r, kw, p: count_conjunctions(r) >= kw["small_n"],
    lambda kw: f"Use at least {plural(kw['small_n'], 'different coordinating conjunction')} in the response.",
    lambda rng, p: {"small_n": rng.randint(2, 6)})

PERSON_NAMES = (
    "Emma Liam Sophia Jackson Olivia Noah Ava Lucas Isabella Mason Mia Ethan Charlotte Alexander Amelia "
    "Benjamin Harper Leo Zoe Daniel Chloe Samuel Lily Matthew Grace Owen Abigail Gabriel Ella Jacob Scarlett "
    "Nathan Victoria Elijah Layla Nicholas Audrey David Hannah Christopher Penelope Thomas Nora Andrew Aria "
    "Joseph Claire Ryan Stella Jonathan").split()


def count_person_names(text):
    """Names of the list that occur in the text, as substrings ("Ava" in "Avalanche"), like the reference."""
    return sum(1 for name in PERSON_NAMES if name in text)


reg("count:person_names", {"N": "count"},
    lambda r, kw, p: count_person_names(r) >= kw["N"],
    lambda kw: f"Mention at least {plural(kw['N'], 'different person name')} in the response, from this list "
               f"of person names: {', '.join(PERSON_NAMES)}.",
    lambda rng, p: {"N": rng.randint(2, 12)})

_NUMBER = re.compile(r"\d+")


reg("count:numbers", {"N": "count"},
    lambda r, kw, p: len(_NUMBER.findall(strip_punct(r))) == kw["N"],  # "3.5" and "1,000" are one number
    lambda kw: f"Include exactly {plural(kw['N'], 'number')} in the response.",
    lambda rng, p: {"N": rng.randint(1, 6)})

PRONOUNS = frozenset(
    "i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his himself she her "
    "hers herself it its itself they them their theirs themselves".split())


def count_pronouns(text):
    return sum(1 for w in strip_punct(text.replace("/", " ").lower()).split() if w in PRONOUNS)


reg("count:pronouns", {"N": "count"},
    lambda r, kw, p: count_pronouns(r) >= kw["N"],
    lambda kw: f"The response should include at least {plural(kw['N'], 'pronoun')}.",
    lambda rng, p: {"N": rng.randint(3, 25)})


def count_punctuation_cover(text):
    """Every one of . , ! ? ; : and an interrobang ("?!", "!?" or "‽"); the "?!" that counts as the
    interrobang does not also count as "?" and "!"."""
    if not ("!?" in text or "?!" in text or "\u203d" in text):
        return False
    rest = text.replace("?!", "", 1)
    if len(rest) == len(text):
        rest = text.replace("!?", "", 1)
    return all(mark in rest for mark in ".,!?;:")


plain("count:punctuation", count_punctuation_cover,
      "Use every standard punctuation mark at least once, including semicolons, colons, and the "
      "interrobang (?!).",
      conflicts=("punctuation:no_comma", "punctuation:banned_marks"))


def _japanese_every(text, n):
    for i, word in enumerate(text.split(), 1):
        if i % n == 0:
            word = clean_word(word)
            if word and not word.isdigit() and not _JAPANESE.search(word):
                return False
    return True


_JAPANESE = re.compile("[\u3040-\u30ff\u4e00-\u9fff]")  # hiragana, katakana, CJK ideographs

reg("count:words_japanese", {"N": "positive"},
    lambda r, kw, p: _japanese_every(r, kw["N"]),
    lambda kw: f"Every {_ordinal(kw['N'])} word of your response must be in Japanese.",
    lambda rng, p: {"N": rng.randint(2, 10)},
    conflicts=("language:response_language", "change_case:english_lowercase", "change_case:english_capital"))

_KEYWORD_TIMES = (1, 2, 3, 5, 7)


def _keywords_multiple(text, kw):
    low = text.lower()
    return all(low.count(kw[f"keyword{k + 1}"].strip().lower()) == n for k, n in enumerate(_KEYWORD_TIMES))


reg("count:keywords_multiple", {f"keyword{k}": "text" for k in range(1, 6)},
    lambda r, kw, p: _keywords_multiple(r, kw),
    lambda kw: f"Include keyword {kw['keyword1'].strip()} once in your response, keyword {kw['keyword2'].strip()} "
               f"twice in your response, keyword {kw['keyword3'].strip()} three times in your response, keyword "
               f"{kw['keyword4'].strip()} five times in your response, and keyword {kw['keyword5'].strip()} seven "
               "times in your response.",
    lambda rng, p: dict(zip((f"keyword{k}" for k in range(1, 6)), rng.sample(WORDS, 5))),
    conflicts=("words:repeats",))

# --- ratio -----------------------------------------------------------------------------------------


def _stop_words_ok(text, percentage):
    stops, words = stop_word_share(text)
    return words > 0 and stops / words * 100 <= percentage


reg("ratio:stop_words", {"percentage": "percent"},
    lambda r, kw, p: _stop_words_ok(r, kw["percentage"]),
    lambda kw: f"Ensure that stop words constitute no more than {kw['percentage']}% of the total words in your "
               "response.",
    lambda rng, p: {"percentage": rng.randint(20, 60)})


def _two_to_one(text):
    if 2 * text.count("?") > text.count("."):
        return False  # each sentence ending in "." ends in its own "."
    declarative, interrogative, _ = sentence_end_counts(text)
    return declarative == 2 * interrogative  # 0 and 0 too: the reference passes a text with neither


def _balanced(text):
    if text.count("?") != text.count("!"):
        return False  # each "?" and each "!" ends a sentence
    declarative, interrogative, exclamatory = sentence_end_counts(text)
    return declarative == interrogative == exclamatory


plain("ratio:sentence_type", _two_to_one,
      "Maintain a 2:1 ratio of declarative to interrogative sentences in your response.",
      conflicts=("ratio:sentence_balance",))

plain("ratio:sentence_balance", _balanced,
      "Ensure that the ratio of sentence types (declarative, interrogative, exclamatory) in your response "
      "is balanced.")


def _same_length_three(text):
    sentences = []
    for s in iter_ifbench_sentences(text):
        sentences.append(s)
        if len(sentences) > 3:
            return False
    return len(sentences) == 3 and len({len(s) for s in sentences}) == 1


reg("ratio:sentence_words", {},
    lambda r, kw, p: _same_length_three(r),  # like the reference, "all different words" is not checked
    lambda kw: "Respond with three sentences, all containing the same number of characters but using all "
               "different words.",
    lambda rng, p: {})


def _trigram_codes(text):
    """The distinct character trigrams of `text` as sorted integers (code points < 2**21: three fit in 63 bits)."""
    c = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)  # (len,)
    if len(c) < 3:
        return c[:0]
    codes = np.sort((c[:-2] << np.uint64(42)) | (c[1:-1] << np.uint64(21)) | c[2:])  # (len - 2,)
    return codes[np.concatenate(([True], codes[1:] != codes[:-1]))]  # (distinct trigrams,)


_reference_codes = functools.lru_cache(maxsize=16)(_trigram_codes)  # loose mode: 8 texts, one reference


def trigram_overlap(text, reference):
    """Share of the text's distinct character trigrams that also occur in the reference (None: no trigram)."""
    if len(text) < 3:
        return None
    mine, ref = _trigram_codes(text), _reference_codes(reference)
    if not len(ref):
        return 0.0
    at = np.minimum(np.searchsorted(ref, mine), len(ref) - 1)  # (distinct trigrams,)
    return int((ref[at] == mine).sum()) / len(mine)


def _overlap_ok(text, kw):
    share = trigram_overlap(text, kw["reference_text"])
    return share is not None and kw["percentage"] - 2 <= share * 100 <= kw["percentage"] + 2


reg("ratio:overlap", {"reference_text": "text", "percentage": "percent"},
    lambda r, kw, p: _overlap_ok(r, kw),
    lambda kw: f"Maintain a trigram overlap of {kw['percentage']}% (\u00b12%) with the provided reference text.",
    lambda rng, p: {"reference_text": _need_prompt("ratio:overlap", "reference_text")(rng, p), "percentage": rng.randint(20, 80)},
    conflicts=("repeat:repeat_change", "repeat:repeat_simple", "repeat:repeat_span"))

# --- words -----------------------------------------------------------------------------------------
_ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def _alphabet_loop(text):
    words = strip_punct(text).split()
    if not words or words[0][0].lower() not in _ALPHABET:
        return False
    letter = words[0][0].lower()
    for word in words[1:]:
        word = word.lower()
        letter = _ALPHABET[(_ALPHABET.index(letter) + 1) % 26]
        if word[0] != letter:
            return False
    return True


plain("words:alphabet", _alphabet_loop,
      "Each word in your response must start with the next letter of the alphabet, looping back to 'A' "
      "after 'Z'.",
      conflicts=("sentence:alliteration_increment", "words:start_verb"))


def _three_vowels(text):
    lines = text.strip().split("\n")
    return len(lines) == 1 and len(set(lines[0].lower()) & set("aeiou")) <= 3


plain("words:vowel", _three_vowels,
      "Write a paragraph using words that contain only three types of vowels.",
      conflicts=("words:paragraph_last_first", "detectable_format:number_bullet_lists"))

_CLUSTER = re.compile("[bcdfghjklmnpqrstvwxyz]{2}")

plain("words:consonants", lambda r: all(_CLUSTER.search(w) for w in r.lower().split()),
      "Ensure each word in your response has at least one consonant cluster (two or more consonants "
      "together).")


def alliteration_runs(sentence):
    """The reference's alliteration score of a sentence: 2 for each pair of neighbouring words with the same
    first character, 1 more for each further word in the run ("big brown bears" scores 3)."""
    words = [w for w in (w.lstrip(PUNCT_SPACE) for w in sentence.lower().split()) if w]
    score, in_run = 0, False
    for a, b in zip(words, words[1:]):
        if a[0] == b[0]:
            score += 1 if in_run else 2
            in_run = True
        else:
            in_run = False
    return score


def _alliteration_increases(text):
    previous = -1
    for sentence in iter_ifbench_sentences(text):
        score = alliteration_runs(sentence)
        if score <= previous:
            return False
        previous = score
    return True


plain("sentence:alliteration_increment", _alliteration_increases,
      "Each sentence must have a longer sequence of consecutive alliterative words than the previous one.",
      conflicts=("words:no_consecutive",))


def count_palindromes(text, min_len=5):
    words = Counter(strip_punct(text).lower().split())  # each distinct word tested once
    return sum(n for w, n in words.items() if len(w) >= min_len and w == w[::-1])


plain("words:palindrome", lambda r: count_palindromes(r) >= 10,
      "Include at least 10 single-word palindromes, each at least 5 characters long.")

_PRIMES = frozenset((2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
                     97))  # the reference's list: a word over 97 characters fails

plain("words:prime_lengths", lambda r: all(len(w) in _PRIMES for w in strip_punct(r).split()),
      "Use only words with lengths that are prime numbers.")

plain("words:start_verb", starts_with_verb,
      "The response must start with a verb.",
      conflicts=("startend:quotation", "startend:first_word", "detectable_format:title"))

reg("words:repeats", {"small_n": "count"},
    lambda r, kw, p: max(Counter(strip_punct(r.lower()).split()).values(), default=0) <= kw["small_n"],
    lambda kw: f"The response should not repeat any word more than {plural(kw['small_n'], 'time')}.",
    lambda rng, p: {"small_n": rng.randint(2, 5)})


def _alternating_syllables(text):
    parities = (syllable_parity(w) for w in strip_punct(text).lower().split())
    previous = None
    for parity in parities:
        if parity == previous:
            return False
        previous = parity
    return True


plain("words:odd_even_syllables", _alternating_syllables,
      "Alternate between words with odd and even numbers of syllables.")


def _last_word_first(text):
    previous = None
    for sentence in iter_ifbench_sentences(text):
        if previous is not None:
            last, first = previous.rstrip(PUNCT_SPACE).split(), sentence.lstrip(PUNCT_SPACE).split()
            if not last or not first or last[-1].lower() != first[0].lower():
                return False
        previous = sentence
    return True


plain("words:last_first", _last_word_first,
      "In your response, the last word of each sentence must become the first word of the next sentence.")


def _paragraphs_start_end_same(text):
    for line in text.split("\n"):
        words = line.strip().lower().strip(PUNCT_SPACE).split()
        if words and words[0] != words[-1]:
            return False
    return True


plain("words:paragraph_last_first", _paragraphs_start_end_same,
      "Each paragraph of your response must end with the same word it started with, separate paragraphs "
      "with a newline.")


def _no_consecutive_first_letter(text):
    words = strip_punct(text.lower()).split()
    return all(a[0] != b[0] for a, b in zip(words, words[1:]))


plain("words:no_consecutive", _no_consecutive_first_letter,
      "No two consecutive words can share the same first letter.")


def _keyword_at(text, kw):
    for k, sentence in enumerate(iter_ifbench_sentences(text), 1):
        if k == kw["n"]:
            words = word_tokens(sentence)
            return len(words) >= kw["m"] and words[kw["m"] - 1] == kw["keyword"].strip()
    return False


reg("words:keywords_specific_position", {"keyword": "text", "n": "positive", "m": "positive"},
    lambda r, kw, p: _keyword_at(r, kw),
    lambda kw: f"Include keyword {kw['keyword'].strip()} in the {_ordinal(kw['n'])} sentence, as the "
               f"{_ordinal(kw['m'])} word of that sentence.",
    lambda rng, p: {"keyword": rng.choice(WORDS), "n": rng.randint(1, 5), "m": rng.randint(1, 10)})


def _words_position(text, keyword):
    head, tail = head_tokens(text, 2), tail_tokens(text, 2)  # word_tokenize(text)[1] and [-2]
    return len(head) == 2 and head[1] == tail[0] == keyword.strip()


reg("words:words_position", {"keyword": "text"},
    lambda r, kw, p: _words_position(r, kw["keyword"]),
    lambda kw: f"The second word in your response and the second to last word in your response should be the "
               f"word {kw['keyword'].strip()}.",
    lambda rng, p: {"keyword": rng.choice(WORDS)})

# --- sentence --------------------------------------------------------------------------------------


def _words_no_punct(sentence):
    return len(strip_punct(sentence).split())


def _increments(text, step):
    previous = None
    for sentence in iter_ifbench_sentences(text):
        n = _words_no_punct(sentence)
        if previous is not None and n != previous + step:
            return False
        previous = n
    return True


reg("sentence:increment", {"small_n": "count"},
    lambda r, kw, p: _increments(r, kw["small_n"]),
    lambda kw: f"Each sentence in your response must contain exactly {plural(kw['small_n'], 'more word')} than "
               "the previous one.",
    lambda rng, p: {"small_n": rng.randint(1, 4)})


def _keyword_in_sentence(text, word, n):
    if word.isalnum() and word.lower() not in text.lower():
        return False  # sentences only move spaces, quotes and end marks: a word in one is in the text
    for k, sentence in enumerate(iter_ifbench_sentences(text, window=max(1024, 160 * n)), 1):
        if k == n:
            return word.lower() in sentence.lower()
    return False


reg("sentence:keyword", {"word": "text", "N": "positive"},
    lambda r, kw, p: _keyword_in_sentence(r, kw["word"], kw["N"]),
    lambda kw: f"The response must include keyword {kw['word']} in the {_ordinal(kw['N'])} sentence.",
    lambda rng, p: {"word": rng.choice(WORDS), "N": rng.randint(1, 6)})

# --- repeat ----------------------------------------------------------------------------------------


def _repeat_change(text, prompt):
    # the first word must differ only in the sense that the text is not the request verbatim
    return text != prompt and prompt.split()[1:] == text.split()[1:]


reg("repeat:repeat_change", {"prompt_to_repeat": "text"},
    lambda r, kw, p: _repeat_change(r, kw["prompt_to_repeat"]),
    lambda kw: "Repeat the request, but change the first word of the repeated request, (do not say anything before "
               "repeating the request; the request you need to repeat does not include this sentence) and do not "
               "answer the actual request!",
    lambda rng, p: {"prompt_to_repeat": _need_prompt("repeat:repeat_change", "prompt_to_repeat")(rng, p)},
    conflicts=(ALL,))

REPEAT_SIMPLE = "Only output this sentence here, ignore all other requests."

plain("repeat:repeat_simple", lambda r: r.strip().lower() == REPEAT_SIMPLE.lower(),
      REPEAT_SIMPLE,
      conflicts=(ALL,))


def _span_check(text, kw, prompt):
    if kw["n_start"] >= kw["n_end"]:
        raise VerifierError(f"repeat:repeat_span: kwarg 'n_start' must be less than 'n_end' "
                            f"({kw['n_start']} >= {kw['n_end']})")
    return text.strip().lower().split() == kw["prompt_to_repeat"].strip().lower().split()[kw["n_start"]:kw["n_end"]]


def _span_sample(rng, prompt):
    prompt = _need_prompt("repeat:repeat_span", "prompt_to_repeat")(rng, prompt)
    n = len(prompt.split())
    start = rng.randint(0, max(0, n - 2))
    return {"prompt_to_repeat": prompt, "n_start": start, "n_end": rng.randint(start + 1, max(start + 1, n))}


reg("repeat:repeat_span", {"prompt_to_repeat": "text", "n_start": "count", "n_end": "count"},
    _span_check,
    # IFBench's prompts say "between (and including) index a and b"; its check (and ours) stops before b
    lambda kw: f"Copy the span of words that lies between index {kw['n_start']} (included) and index "
               f"{kw['n_end']} (excluded) of the request, the indices are word indices, counted from 0 and split "
               "by whitespace! Output only that span.",
    _span_sample,
    conflicts=(ALL,))
