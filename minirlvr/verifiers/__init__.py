"""minirlvr's hard-constraint verifiers: the 25 IFEval instructions, VerInstruct-style extras, and IFBench's 58
out-of-domain constraints.

    from minirlvr import verifiers
    verifiers.ids()                                   # every instruction id, "group:name"
    verifiers.ids("ifbench")                          # one set: "ifeval", "extra" or "ifbench"
    verifiers.check("punctuation:no_comma", text, {})  # strict; loose=True for IFEval's loose mode
    verifiers.score(record, text)                     # {"strict", "loose", "prompt_strict", "prompt_loose"}
    verifiers.describe(iid, kwargs)                   # the instruction in English
    verifiers.sample_kwargs(iid, random.Random(0))    # kwargs for building training data
    verifiers.conflicts(iid)                          # ids that must not share a prompt with iid

Files: registry.py (the API, kwargs validation, strict/loose), text.py (sentences, words, language),
ifeval.py (IFEval's 25), extra.py (the extras), ifbench.py and ifbench_format.py (IFBench's 58),
ifbench_text.py (IFBench's sentence splitter, NLTK-style word tokens, stop words, verbs), pos_tagger.py
(words:start_verb's tagger: NLTK's perceptron model when found, else TextBlob's), hostile.py (hostile response
families for the linear-time tests and benchmark), bench.py (speed against the reference scorers, and on
hostile input).
"""

from . import extra, ifbench, ifbench_format, ifeval  # noqa: F401  (registration)
from .registry import (RELATIONS, Verifier, VerifierError, check, conflicts, describe, ids, loose_variants,
                       sample_kwargs, score, validate_kwargs)

__all__ = ["ids", "check", "score", "describe", "sample_kwargs", "conflicts", "VerifierError", "Verifier",
           "RELATIONS", "loose_variants", "validate_kwargs"]
