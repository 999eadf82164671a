"""critic.py: the answer parser on canned answers, the flow (conflict table first, one question per other prompt,
unparsed answers counted and kept or dropped), and the path through a tiny random model."""

import pytest

from minirlvr.refine import critic
from minirlvr.engine.model import tiny_model, word_tokenizer

NO_COMMA = {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}


@pytest.mark.parametrize("answer,verdict,reason", [
    ("VERDICT: KEEP\nREASON: The constraints fit the task.", "keep", "The constraints fit the task."),
    ("**Verdict:** drop\n**Reason:** a haiku cannot have 300 words.", "drop", "a haiku cannot have 300 words."),
    ("verdict - Drop. reason: tone clash", "drop", "tone clash"),
    ("I would keep this one, it is fine.", "keep", "I would keep this one, it is fine."),
    ("VERDICT: DROP\nREASON: do not keep two tones", "drop", "do not keep two tones"),  # the VERDICT line wins
    ("Keep or drop? Hard to say.", None, "Keep or drop? Hard to say."),  # both words, no VERDICT line
    ("The prompt looks sensible.", None, "The prompt looks sensible."),
    ("", None, ""),
    ("VERDICT: KEEPING", None, "VERDICT: KEEPING"),
])
def test_parse_canned_answers(answer, verdict, reason):
    assert critic.parse(answer) == (verdict, reason)


def scripted(answers):
    asked = []

    def ask(prompts):
        asked.extend(prompts)
        return [answers[len(asked) - len(prompts) + i] for i in range(len(prompts))]
    return ask, asked


def test_review_flow_conflicts_first_then_one_question_per_prompt():
    records = [
        {"key": 0, "prompt": "Write a poem. In your entire response, refrain from the use of any commas.", **NO_COMMA,
         "soft_constraints": ["Use a warm, friendly tone."]},
        {"key": 1, "prompt": "Shout.", "instruction_id_list": ["change_case:english_lowercase", "change_case:english_capital"],
         "kwargs": [{}, {}]},
        {"key": 2, "prompt": "Write a story.", "rule_checks": [{"name": "Length_Limit", "code": "..."}]},
        {"key": 3, "messages": [{"role": "user", "content": "Describe tea."}]},
    ]
    ask, asked = scripted(["VERDICT: KEEP\nREASON: fine", "VERDICT: DROP\nREASON: too vague", "hmm"])
    decisions = critic.review(records, ask)
    assert len(asked) == 3 and "Shout." not in "".join(asked)  # the conflict never reaches the model
    assert "1. [checked by code] In your entire response, refrain from the use of any commas." in asked[0]
    assert "2. [judged] Use a warm, friendly tone." in asked[0] and "[checked by code] Length_Limit" in asked[1]
    assert "Describe tea." in asked[2] and "(none)" in asked[2]
    assert [(d.keep, d.kind) for d in decisions] == [(True, "kept"), (False, "conflict"), (False, "infeasible"),
                                                     (True, "unparsed")]
    assert "change_case:english_lowercase" in decisions[1].reason and decisions[2].reason == "too vague"
    ask, _ = scripted(["VERDICT: KEEP", "VERDICT: DROP", "hmm"])
    kept, dropped = critic.critic(records, ask, on_unparsed="drop")
    assert [r["key"] for r in kept] == [0] and dropped == {"conflict": 1, "infeasible": 1, "unparsed": 1}
    with pytest.raises(ValueError, match="2 answers for 3 prompts"):
        critic.review(records, lambda prompts: ["VERDICT: KEEP"] * 2)


def test_critic_through_a_tiny_random_model():
    words = [f"w{i}" for i in range(40)]  # no "keep" / "drop" in the vocabulary: no answer can be parsed
    tok = word_tokenizer(words)
    model = tiny_model(vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    records = [{"key": k, "prompt": f"w{k} w{k + 1}", **NO_COMMA} for k in range(3)]
    records.append({"key": 3, "prompt": "w9", "instruction_id_list": ["startend:quotation", "detectable_format:title"],
                    "kwargs": [{}, {}]})
    ask = critic.model_ask(model, tok, max_new_tokens=6)
    decisions = critic.review(records, ask)
    assert [d.kind for d in decisions] == ["unparsed"] * 3 + ["conflict"]
    assert all(isinstance(d.answer, str) for d in decisions[:3])
    kept, dropped = critic.critic(records, ask)
    assert [r["key"] for r in kept] == [0, 1, 2] and dropped == {"conflict": 1, "infeasible": 0}
