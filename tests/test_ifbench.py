"""Unit tests for IFBench's 58 verifiers: each passes and fails where it should (cases written from IFBench's
instruction texts; the reference's quirks that decide verdicts are pinned), loose vs strict, bad kwargs
named by id and field, the text tools on small cases, and hostile input. Agreement with IFBench's reference
on real responses is in test_ifbench_agreement.py; the contract tests every id shares (describe,
sample_kwargs, conflicts, empty text) are in test_verifiers.py."""

import json
import random

import pytest
from test_verifiers import HOSTILE, assert_linear

from minirlvr import verifiers as V
from minirlvr.verifiers import ifbench_text as T
from minirlvr.verifiers import pos_tagger
from minirlvr.verifiers.ifbench_format import NORTHERN_CAPITALS

IFBENCH_IDS = V.ids("ifbench")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
KEYWORDS5 = {"keyword1": "sun", "keyword2": "moon", "keyword3": "star", "keyword4": "sky", "keyword5": "sea"}
FIVE_KEYWORDS = "sun " + "moon " * 2 + "star " * 3 + "sky " * 5 + "sea " * 7


def _mcq(lengths_up=True, preface=""):
    stems = ["Who?", "Who is?", "Who is he?", "Who is he now?"]
    stems = stems if lengths_up else stems[::-1]
    return preface + "\n".join(f"Question {k + 1}: {s}\n" + "\n".join(f"{c}) opt" for c in "ABCDE")
                               for k, s in enumerate(stems))


def _countries(ok=True):
    lines = ["Zimbabwe"] + [f"Country {99 - i:02d}" for i in range(51)]
    if not ok:
        lines[5], lines[6] = lines[6], lines[5]
    return "\n".join(lines)


_PRODUCTS = "ProductID,Category,Brand,Price,Stock\n" + "\n".join(f"{i},Tea,Acme,3,{i}" for i in range(13))
_STUDENTS = '"StudentID"\t"Subject"\t"Grade"\t"Semester"\t"Score"\n' + "\n".join(
    f'"{i}"\t"Math"\t"A"\t"Fall"\t"9{i}"' for i in range(3))

# (id, kwargs, a response that follows it, a response that does not)
CASES = [
    ("count:word_count_range", {"min_words": 3, "max_words": 5}, "one two three four", "one two"),
    ("count:unique_word_count", {"N": 4}, "Tea, coffee, milk and water.", "tea TEA, tea. Tea!"),
    ("count:conjunctions", {"small_n": 3}, "I came and saw, but left, so what.", "and and and but"),
    ("count:conjunctions", {"small_n": 3}, "and And and,", "and and"),  # the reference: raw words differ
    ("count:person_names", {"N": 2}, "Emma met Noah.", "Emma met emma."),
    ("count:numbers", {"N": 2}, "I ate 3.5 apples and 12 pears.", "1, 2, 3"),
    ("count:pronouns", {"N": 3}, "She/her said it to me.", "The cat sat."),
    ("count:punctuation", {}, "Really?! Yes; no: maybe, fine. Why? Stop!", "Really?! Yes; no: maybe, fine. Stop!"),
    ("count:words_japanese", {"N": 2}, "I 猫 like 犬 much 42", "I cat like dog"),
    ("count:keywords_multiple", KEYWORDS5, FIVE_KEYWORDS, FIVE_KEYWORDS.replace("sea ", "", 1)),
    ("ratio:stop_words", {"percentage": 50}, "Quick brown foxes jump over lazy dogs.", "It is what it is."),
    ("ratio:sentence_type", {}, "I like tea. You like coffee. Do we agree?", "Is it? Yes."),
    ("ratio:sentence_type", {}, "No sentence ends here", "Yes. Yes."),  # 0 = 2 x 0, as in the reference
    ("ratio:sentence_balance", {}, "I am here. Are you? Wow!", "I am here. Are you?"),
    ("ratio:sentence_words", {}, "Cats nap. Dogs run. Owls fly.", "Cats nap. Dogs run fast. Owls fly."),
    ("ratio:overlap", {"reference_text": "the cat sat on the mat", "percentage": 100}, "the cat sat", "a dog ran"),
    ("words:alphabet", {}, "Apple bananas cherries, delicious!", "Apple cherries"),
    ("words:alphabet", {}, "Yes, zebras are big.", "Yes, zebras eat"),  # Z loops back to A
    ("words:vowel", {}, "A cat sat at the bar.", "A cat ate an egg in our hut."),
    ("words:consonants", {}, "Strong black trucks.", "A strong truck."),
    ("sentence:alliteration_increment", {}, "Big bears. Silly snakes sing softly.", "Silly snakes sing. Big bears."),
    ("words:palindrome", {}, "level radar civic kayak refer madam rotor stats tenet racecar",
     "level radar civic kayak refer madam rotor stats tenet"),
    ("words:prime_lengths", {}, "An owl sat.", "An owl sat here."),
    ("words:start_verb", {}, "Build a plan first.", "The plan comes first."),
    ("words:repeats", {"small_n": 2}, "tea tea coffee", "tea, tea. TEA!"),
    ("words:odd_even_syllables", {}, "cat water dog", "cat dog"),
    ("words:last_first", {}, "I like tea. Tea is good. Good night.", "I like tea. Coffee is good."),
    ("words:paragraph_last_first", {}, "tea is nice tea\n\ncoffee and more coffee.", "tea is nice\ncoffee"),
    ("words:no_consecutive", {}, "A big cat danced.", "A big bear danced."),
    ("words:keywords_specific_position", {"keyword": "tea", "n": 2, "m": 3}, "Hi there. I like tea a lot.",
     "Hi there. I like coffee tea."),
    ("words:words_position", {"keyword": "tea"}, "I tea, you tea.", "I like tea."),
    ("sentence:increment", {"small_n": 1}, "I run. I run fast. I run very fast.", "I run. I run."),
    ("sentence:keyword", {"word": "tea", "N": 2}, "Hello. I like TEA.", "I like tea. Hello."),
    ("repeat:repeat_change", {"prompt_to_repeat": "Write a poem about tea."}, "Compose a poem about tea.",
     "Write a poem about tea."),
    ("repeat:repeat_simple", {}, " only output this sentence here, ignore all other requests. ",
     "Sure: Only output this sentence here, ignore all other requests."),
    ("repeat:repeat_span", {"prompt_to_repeat": "one two three four five", "n_start": 1, "n_end": 3}, "Two three",
     "two three four"),
    ("format:emoji", {}, "I love tea 😀. It is warm 🎉.", "I love tea. It is warm 🎉."),
    ("format:emoji", {}, "Great! 😀 Warm tea! 🎉", "Great! Warm tea! 🎉"),  # or first in the next sentence
    ("format:line_indent", {}, "a\n b\n  c", "a\n b\n c"),
    ("format:line_indent", {}, "a\n\n b", "a\n\n\n b"),  # the reference's removal skips the 2nd blank line
    ("format:list", {"sep": "SEPARATOR"}, "SEPARATOR tea\nSEPARATOR milk", "SEPARATOR tea"),
    ("format:newline", {}, "one\ntwo\nthree.", "one two\nthree"),
    ("format:no_bullets_bullets", {}, "I like tea. It is warm.\n* green\n* black", "I like tea.\n* green\n* black"),
    ("format:no_bullets_bullets", {}, "I like tea. It is warm.\n* green\n* black",
     "I like tea.\n\nIt is warm.\n* green\n* black"),  # a blank line ends the sentences
    ("format:no_whitespace", {}, "no_spaces_here", "two words"),
    ("format:options", {"options": "yes/no/maybe"}, "Maybe.", "Maybe, because it rains."),
    ("format:options", {"options": "a), b), c), d)"}, "b)", "b"),  # letter options: exactly
    ("format:output_template", {}, "My Answer: x My Conclusion: y Future Outlook: z", "My Answer: x"),
    ("format:parentheses", {}, "( [ { ( [ x ] ) } ] )", "( [ { ( x ) } ] )"),
    ("format:quotes", {}, "He said \"she said 'they said \"hi\"'\"", "He said \"she said 'hi'\""),
    ("format:quote_unquote", {}, '"Carpe diem" means seize the day.', 'He said "carpe diem".'),
    ("format:sub-bullets", {}, "* fruit\n - apple\n* veg\n - kale", "* fruit\n - apple\n* veg"),
    ("format:thesis", {}, "<i>Tea is good.</i> Here is why.", "<i>Tea is good.</i>"),
    ("format:title_case", {}, "The Cat Sat On The Mat.", "The cat sat."),
    ("format:title_case", {}, "I Can Do It", "I Don't Know"),  # "n't" is a lower-case token
    ("custom:multiples", {}, "14, 21, 28, 35, 42, 49", "7, 14, 21, 28, 35, 42, 49"),
    ("custom:mcq_count_length", {}, _mcq(), _mcq(preface="Sure!\n")),
    ("custom:mcq_count_length", {}, _mcq(), _mcq(lengths_up=False)),
    ("custom:reverse_newline", {}, _countries(), _countries(ok=False)),
    ("custom:word_reverse", {}, "Eagle bald the is it.", "It is the bald eagle."),
    ("custom:character_reverse", {}, ".elgae dlab ehT", "The bald eagle."),
    ("custom:sentence_alphabet", {}, " ".join(f"{c}ow." for c in LETTERS), " ".join(f"{c}ow." for c in LETTERS[1:])),
    ("custom:european_capitals_sort", {}, ", ".join(NORTHERN_CAPITALS), ", ".join(NORTHERN_CAPITALS[::-1])),
    ("custom:csv_city", {}, "ID,Country,City,Year,Count\n" + "\n".join(f"{i},X,Y,2020,{i}" for i in range(7)),
     "ID,Country,City,Year,Count\n" + "\n".join(f"{i},X,Y,2020,{i}" for i in range(6))),
    ("custom:csv_special_character", {}, _PRODUCTS + '\n13,"Tea & Co",Acme,3,1', _PRODUCTS + "\n13,Tea,Acme,3,1"),
    ("custom:csv_quotes", {}, _STUDENTS, _STUDENTS.replace('"Math"', "Math")),
    ("custom:date_format_list", {}, "1796-04-12, 1805-12-02", "1796-04-12, 1805-13-02"),
]


def test_every_ifbench_id_has_cases():
    assert len(IFBENCH_IDS) == 58 and {c[0] for c in CASES} == set(IFBENCH_IDS)
    groups = {i.split(":")[0] for i in IFBENCH_IDS}
    assert groups == {"count", "ratio", "words", "sentence", "format", "custom", "repeat"}


@pytest.mark.parametrize("iid,kwargs,good,bad", CASES, ids=[f"{c[0]}-{k}" for k, c in enumerate(CASES)])
def test_pass_and_fail(iid, kwargs, good, bad):
    assert V.check(iid, good, kwargs) is True
    assert V.check(iid, bad, kwargs) is False
    assert V.check(iid, good, kwargs, loose=True) is True  # loose never fails what strict passes


# --- loose vs strict ---------------------------------------------------------------------------------
# IFBench scores loose like IFEval: the response, without its first / last line or both, each with every
# "*" removed. A chatty first line, a sign-off and markdown bold are what it forgives.
CHATTY, SIGN_OFF = "Sure, here it is:\n", "\nHope this helps!"
LOOSE = [
    ("count:word_count_range", {"min_words": 3, "max_words": 5}, CHATTY + "one two three four"),
    ("count:person_names", {"N": 2}, "**Em**ma met **No**ah."),
    ("count:numbers", {"N": 2}, "Step 1:\nI ate 3 apples and 12 pears."),
    ("count:words_japanese", {"N": 2}, "I 猫 like 犬 much" + SIGN_OFF),
    ("ratio:sentence_type", {}, "Sure, here it is.\nI like tea. You like coffee. Do we agree?"),
    ("ratio:sentence_words", {}, "Cats nap. Dogs run. Owls fly." + SIGN_OFF),
    ("words:alphabet", {}, CHATTY + "Apple bananas cherries, delicious!"),
    ("words:vowel", {}, CHATTY + "A cat sat at the bar."),
    ("words:start_verb", {}, CHATTY + "Build a plan first."),
    ("words:no_consecutive", {}, "A big cat danced.\nThanks, take care!"),
    ("format:no_whitespace", {}, "no_spaces_here" + SIGN_OFF),
    ("format:options", {"options": "yes/no/maybe"}, "Answer:\nmaybe"),
    ("format:title_case", {}, CHATTY + "The Cat Sat On The Mat."),
    ("format:sub-bullets", {}, "**Plan**\n* fruit\n - apple"),
    ("repeat:repeat_simple", {}, CHATTY + "Only output this sentence here, ignore all other requests."),
    ("custom:multiples", {}, "Step 1:\n14, 21, 28, 35, 42, 49"),
    ("custom:date_format_list", {}, "1796-04-12, 1805-12-02" + SIGN_OFF),
]


@pytest.mark.parametrize("iid,kwargs,text", LOOSE, ids=[c[0] for c in LOOSE])
def test_loose_passes_where_strict_fails(iid, kwargs, text):
    assert V.check(iid, text, kwargs) is False
    assert V.check(iid, text, kwargs, loose=True) is True


def test_score_ifbench_record():
    rec = {"prompt": "Say yes or no. Use title case.", "instruction_id_list": ["format:options", "format:title_case"],
           "kwargs": [{"options": "yes/no/maybe", "N": None}, {}]}  # None-valued padding, as IFBench ships it
    assert V.score(rec, "Yes") == {"strict": [True, True], "loose": [True, True], "prompt_strict": True,
                                   "prompt_loose": True}
    out = V.score(rec, "Answer:\nYes")
    assert out["strict"] == [False, True] and out["loose"] == [True, True]


# --- words:start_verb: NLTK's perceptron model (the reference's tagger) when its files are found, TextBlob's
# tagger otherwise. Cases for the NLTK path are NLTK's own verdicts, quirks included ("Run fast." is a proper
# noun there); test_ifbench_agreement.py compares the model's first tags with nltk.pos_tag on real responses.

NLTK_VERB = ["Build a plan first.", "Is it true?", "Let me explain.", "Imagine a world without tea.",
             "Has it rained?", "Running late.", "Think about it.", "Whirring and pulsing, the city wakes.", "Build"]
NLTK_NOT_VERB = ["Conceive an empire where souls burn.", "Understand Galois theory first.", "Build.", "Run fast.",
                 "Answer the question.", "Water the plants daily.", "Did you go?", "The plan comes first.",
                 "**Build** a plan.", "1. Build a plan.", "Walking is fun.", "Self-made people build.", ""]


@pytest.fixture
def nltk_tagger():
    from shared_data import NLTK_DATA, TAGGER

    if not TAGGER.is_dir():
        pytest.skip(f"NLTK's tagger model not found in {TAGGER} (the shared data folder beside the repository)")
    pos_tagger.select("nltk", nltk_data=NLTK_DATA)
    yield
    pos_tagger.select()


@pytest.fixture
def textblob_tagger():
    pos_tagger.select("textblob")
    yield
    pos_tagger.select()


def test_start_verb_nltk_model(nltk_tagger):
    assert pos_tagger.describe().startswith("nltk:")
    assert [V.check("words:start_verb", t, {}) for t in NLTK_VERB + NLTK_NOT_VERB] == \
        [True] * len(NLTK_VERB) + [False] * len(NLTK_NOT_VERB)
    tagger = pos_tagger._tagger()
    # the features: the first word as written (tag dictionary), then normalized word, suffix, next two words
    assert tagger.first_tag(["Build", "a", "plan"]) == "VB" and tagger.first_tag(["Build", "."]) == "NNP"
    assert tagger.first_tag(["Build"]) == "VB"  # the end-of-sequence markers are features too
    assert tagger.first_tag(["1999", "was", "good"]) == "CD" and tagger.first_tag([]) is None


STARTS_WITH_VERB = ["Conceive an empire where souls burn.", "Understand Galois theory first.", "Run fast.",
                    "Is it true?", "Let me explain.", "Whirring and pulsing, the city wakes.", "Answer the question.",
                    "Water the plants daily.", "Imagine a world without tea.", "Consider the following."]
NOT_A_VERB = ["The plan comes first.", "Here is the answer.", "Sure, here it is.", "Title: Tea", "Love is all.",
              "**Build** a plan.", "1. Build a plan.", "Certainly! Build it.", "Water is wet.", "My answer is yes."]


def test_start_verb_textblob_fallback(textblob_tagger):
    """The offline approximation without NLTK's model: cases from IFBench's text "The response must start with
    a verb", including first words that could be nouns (it reads imperatives as verbs, unlike NLTK's model)."""
    assert pos_tagger.describe().startswith("textblob:")
    assert [V.check("words:start_verb", t, {}) for t in STARTS_WITH_VERB + NOT_A_VERB] == \
        [True] * len(STARTS_WITH_VERB) + [False] * len(NOT_A_VERB)


def test_start_verb_tagger_choice(tmp_path, monkeypatch):
    """"auto" falls back to TextBlob with a warning naming the folders searched; "nltk" without the model is an
    error; the model is found under an nltk_data folder or given as its own folder; a bad model file is named."""
    monkeypatch.setenv("NLTK_DATA", str(tmp_path))
    nltk_data = pytest.importorskip("nltk.data", reason="nltk's search path would include the user's folders")
    monkeypatch.setattr(nltk_data, "path", [])  # only tmp_path is searched (others may hold the real model)
    pos_tagger.select("auto", nltk_data=tmp_path)
    try:
        with pytest.warns(UserWarning, match=str(tmp_path)):
            assert pos_tagger.describe().startswith("textblob:")
        pos_tagger.select("nltk", nltk_data=tmp_path)
        with pytest.raises(FileNotFoundError, match="averaged_perceptron_tagger_eng"):
            pos_tagger.describe()
        model = tmp_path / pos_tagger.MODEL
        model.mkdir(parents=True)
        files = {"weights": {"bias": {"VB": 1.0, "NN": 0.5}}, "tagdict": {"The": "DT"}, "classes": ["NN", "VB"]}
        for part, obj in files.items():
            (model / f"averaged_perceptron_tagger_eng.{part}.json").write_text(json.dumps(obj))
        for where in (tmp_path, model):
            pos_tagger.select("nltk", nltk_data=where)
            assert str(model) in pos_tagger.describe()
            assert V.check("words:start_verb", "Tea time", {}) is True  # the toy model's bias says VB
            assert V.check("words:start_verb", "The tea", {}) is False  # the tag dictionary says DT
        (model / "averaged_perceptron_tagger_eng.classes.json").write_text("{not json")
        pos_tagger.select("nltk", nltk_data=tmp_path)
        with pytest.raises(ValueError, match="classes.json"):
            pos_tagger.describe()
        with pytest.raises(ValueError, match="'auto', 'nltk' or 'textblob'"):
            pos_tagger.select("spacy")
    finally:
        pos_tagger.select()


# --- ratio:stop_words: the reference's list is a download; cases from its text "Ensure that stop words
# constitute no more than {percentage}% of the total words in your response" ------------------------------


@pytest.mark.parametrize("text,share", [("The cat sat on the mat.", 50.0), ("Cats sleep.", 0.0),
                                        ("I don't know", 75.0), ("İstanbul is big", 100 / 3)])
def test_stop_word_share(text, share):
    stops, words = T.stop_word_share(text)
    assert 100 * stops / words == pytest.approx(share)  # "don't" is "don" + "t": both stop words
    assert V.check("ratio:stop_words", text, {"percentage": int(share) + 1}) is True
    if share >= 1:
        assert V.check("ratio:stop_words", text, {"percentage": int(share) - 1}) is False


def test_stop_word_list_is_nltks_without_apostrophes():
    assert len(T.STOP_WORDS) == 153 and {"i", "the", "mightn", "ourselves"} <= T.STOP_WORDS
    assert not any("'" in w for w in T.STOP_WORDS)


# --- the text tools ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text,sentences", [
    ("Mr. Smith came. He left!", ["Mr. Smith came.", "He left!"]),
    ("It costs 3.5 dollars... Really? Yes", ["It costs 3.5 dollars...", "Really?", "Yes"]),
    ("Visit example.com today. Ok.", ["Visit example.com today.", "Ok."]),
    ('She said "hi." Then left.', ['She said "hi".', "Then left."]),  # the quote moves before the period
    ("He works at Acme Inc. He is happy.", ["He works at Acme Inc", "He is happy."]),  # the "." is dropped
    ("I met J. Smith in the U.S. He waved.", ["I met J. Smith in the U.S.", "He waved."]),
])
def test_ifbench_sentences(text, sentences):
    assert T.ifbench_sentences(text) == sentences
    assert list(T.iter_ifbench_sentences(text, window=4)) == sentences


@pytest.mark.parametrize("text,tokens", [
    ("Don't stop, Mr. Smith.", ["Do", "n't", "stop", ",", "Mr.", "Smith", "."]),
    ('"Hi," she said (quietly).', ["``", "Hi", ",", "''", "she", "said", "(", "quietly", ")", "."]),
    ("I cannot wait... gonna go!", ["I", "can", "not", "wait", "...", "gon", "na", "go", "!"]),
])
def test_word_tokens(text, tokens):
    assert T.word_tokens(text) == tokens
    assert T.head_tokens(text, 3) == tokens[:3] and T.tail_tokens(text, 3) == tokens[-3:]


def test_line_indent_removal_quirk():
    from minirlvr.verifiers.ifbench_format import _surviving_lines

    def reference_loop(text):  # the reference's loop, as the specification (quadratic: small inputs only)
        lines = text.split("\n")
        for line in lines:
            if not line.strip():
                lines.remove(line)
        return lines

    rng = random.Random(0)
    for _ in range(3000):
        text = "".join(rng.choice(["a", " ", "\n", "  b", "\t"]) for _ in range(rng.randint(0, 20)))
        assert _surviving_lines(text) == reference_loop(text), repr(text)


# --- bad kwargs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("iid,kwargs,field", [
    ("count:word_count_range", {"min_words": 9, "max_words": 3}, "min_words"),
    ("count:unique_word_count", {"N": -1}, "N"),
    ("count:words_japanese", {"N": 0}, "N"),  # every 0th word: the reference divides by zero
    ("count:keywords_multiple", dict(KEYWORDS5, keyword3=" "), "keyword3"),
    ("count:keywords_multiple", {k: v for k, v in KEYWORDS5.items() if k != "keyword5"}, "keyword5"),
    ("ratio:stop_words", {"percentage": 101}, "percentage"),
    ("ratio:overlap", {"reference_text": "x", "percentage": "50"}, "percentage"),
    ("ratio:overlap", {"percentage": 50}, "reference_text"),
    ("sentence:keyword", {"word": "tea", "N": 0}, "N"),
    ("words:keywords_specific_position", {"keyword": "tea", "n": 2, "m": 1.5}, "m"),
    ("format:list", {"sep": ""}, "sep"),
    ("format:options", {"options": ["yes", "no"]}, "options"),
    ("repeat:repeat_span", {"prompt_to_repeat": "a b c", "n_start": 2, "n_end": 1}, "n_start"),
    ("format:emoji", {"N": 3}, "N"),
])
def test_bad_kwargs_name_id_and_field(iid, kwargs, field):
    with pytest.raises(V.VerifierError) as e:
        V.check(iid, "some text", kwargs)
    assert iid in str(e.value) and repr(field) in str(e.value)


def test_prompt_kwargs_need_the_prompt():
    for iid in ("repeat:repeat_change", "repeat:repeat_span", "ratio:overlap"):
        with pytest.raises(V.VerifierError, match=iid):
            V.sample_kwargs(iid, random.Random(0))
        kw = V.sample_kwargs(iid, random.Random(0), prompt="Write a short poem about green tea.")
        assert "Write a short poem" in kw.get("prompt_to_repeat", kw.get("reference_text"))


def test_sampled_kwargs_are_satisfiable():
    """sample_kwargs gives kwargs that the pass case's shape can meet, e.g. span indices inside the prompt."""
    rng = random.Random(1)
    for _ in range(50):
        kw = V.sample_kwargs("repeat:repeat_span", rng, prompt="one two three four five")
        words = "one two three four five".split()[kw["n_start"]:kw["n_end"]]
        assert words and V.check("repeat:repeat_span", " ".join(words), kw)
        kw = V.sample_kwargs("count:word_count_range", rng)
        assert V.check("count:word_count_range", "w " * kw["min_words"], kw)


# --- hostile input: linear time, no crash ---------------------------------------------------------------


@pytest.mark.parametrize("iid", IFBENCH_IDS)
def test_hostile_inputs_linear_time(iid):
    """Each check's cost, strict and every loose variant, grows linearly over the hostile families
    (test_verifiers.assert_linear: a ratio of costs at two sizes, no clock limit), and every verdict is a bool."""
    assert_linear(iid)
    kw = V.sample_kwargs(iid, random.Random(0), prompt="Write about tea.")
    assert all(V.check(iid, HOSTILE[name], kw, loose=True) in (True, False) for name in ("1MB", "P.S.", "?!"))


def test_hostile_csv_and_quotes_do_not_raise():
    """Where the reference raises (a CSV field over the csv module's limit, an empty CSV field, nothing but
    digits and punctuation for quote_unquote), the verdict is a bool."""
    big_field = "ProductID,Category,Brand,Price,Stock\n\"" + "x" * 200_000
    assert V.check("custom:csv_special_character", big_field, {}) is False
    assert V.check("custom:csv_quotes", '"StudentID"\t"Subject"\t"Grade"\t"Semester"\t"Score"\n\t\t\t\t', {}) is False
    assert V.check("format:quote_unquote", "123 ...", {}) is True
    assert V.check("sentence:increment", "?", {"small_n": 1}) is True


def test_title_case_filter_equals_its_definition():
    """format:title_case looks only at tokens that start with an ASCII letter or a non-ASCII character: the same
    verdict as IFBench's loop over every word token, on random texts of cased, uncased and non-ASCII pieces."""
    from minirlvr.verifiers.ifbench_format import _title_case

    def reference(text):
        for word in T.word_tokens(text):
            if word[0].isupper() and word[1:].islower():
                continue
            if word[0].islower() and (word[1:].isupper() or word[1:].islower()):
                return False
        return True

    rng = random.Random(0)
    pieces = [" ", "\n", ".", "!", "[", "'", '"', "1", "_", "Tea", "tea", "TEA", "iPhone", "n't", "É", "été", "Été",
              "ª", "\u0345", "ǅ", "ß", "Σ", "-", "``"]
    verdicts = set()
    for _ in range(4000):
        t = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        assert _title_case(t) == reference(t), repr(t)
        verdicts.add(reference(t))
    assert verdicts == {True, False}


def test_treebank_rules_match_nltk_on_random_strings():
    """The Treebank rewrite (some rules as str.translate) gives NLTKWordTokenizer's tokens on random sentences
    dense in the characters those rules pad: brackets, marks, closing quotes, dashes."""
    nltk_tokenize = pytest.importorskip("nltk.tokenize", reason="the oracle is nltk (pip install .[test])")
    tb = nltk_tokenize.NLTKWordTokenizer()
    rng = random.Random(0)
    pieces = list(";@#$%&?!*[](){}<>\u2012\u2013\u2014\u2015\u00bb\u201d\u2019\u00ab\u201c\"'.,:-`") + [
        " ", "a", "Tea", "can't", "1,2", "--", "...", " ''"]
    for _ in range(3000):
        s = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 20))).strip() or "a"
        assert T.treebank_tokens([s]) == tb.tokenize(s), repr(s)
