"""The LLM judge: its answer parser on canned answers, a scripted model that shows which constraints each prompt
carries and where each verdict lands, the real flow on a tiny model in both modes, the adapter switched off for
the judge and back on afterwards, and templates checked at start."""

import pytest
import torch

import minirlvr.reward.llm_judge as lj
from minirlvr.engine.chat import Completions
from minirlvr.engine.config import ConfigError
from minirlvr.reward.judge import judge_soft
from minirlvr.reward.llm_judge import LLMJudge, adapters_enabled, load_judge, parse_answer, parse_numbered
from minirlvr.engine.model import ModelError, tiny_model, word_tokenizer

YES = ["yes", "Yes", "YES", "yes.", "Yes!", " yes\n", "**Yes**", "`yes`", "y", "true", "True.", "pass", "satisfied",
       "Yes, the response is all lowercase.", "Answer: yes", "answer - YES", "Final answer: Yes.",
       "The response never uses a comma, so it complies.\nYes", "The response mentions tea twice.\n\nAnswer: Yes",
       "Verdict: satisfied", "No commas anywhere. Answer: yes", "<think>no, wait</think>Yes", "I think so: yes"]
NO = ["no", "No", "NO", "no.", "No!", "**No**", "n", "false", "fail", "not satisfied", "Not satisfied.",
      "unsatisfied", "violated", "No, it uses capital letters.", "Answer: no", "ANSWER: NO", "The judge's verdict: no",
      "It has three paragraphs, not two.\nNo.", "Yes it mentions tea, but it is too long. Final answer: No",
      "<think>yes?</think>\nNo"]
GARBAGE = ["", "   ", "maybe", "I cannot tell.", "yes and no", "Yes/No", "The response is about tea.",
           "It says yes here and no there.", "<think>the response says yes", "42", "satisfies?"]


@pytest.mark.parametrize("text", YES)
def test_parser_reads_yes(text):
    assert parse_answer(text) is True


@pytest.mark.parametrize("text", NO)
def test_parser_reads_no(text):
    assert parse_answer(text) is False


@pytest.mark.parametrize("text", GARBAGE)
def test_parser_refuses_garbage(text):
    assert parse_answer(text) is None


def test_numbered_answers():
    assert parse_numbered("1. yes\n2. No\n3) yes", 3) == [True, False, True]
    assert parse_numbered("Constraint 1: no\n- 2. Yes, it does.\n", 3) == [False, True, None]  # 3 missing
    assert parse_numbered("**1.** Yes\n**2.** No", 2) == [True, False]
    assert parse_numbered("1. Use lowercase.\n2. Mention tea.\n1. yes\n2. no", 2) == [True, False]  # echo first
    assert parse_numbered("1. no\n2. yes\n1. yes", 2) == [None, True]  # 1 answered both ways: unreadable
    assert parse_numbered("1. no\n2. yes\n1. No, as said.", 2) == [False, True]  # said twice, the same way
    assert parse_numbered("yes\nno", 2) == [True, False]  # plain lines, one per constraint
    assert parse_numbered("Yes.", 1) == [True]
    assert parse_numbered("yes", 2) == [None, None]  # one plain line for two constraints: unreadable
    assert parse_numbered("1. maybe\n2. no\n7. yes", 2) == [None, False]  # out-of-range numbers are ignored


# ---------------------------------------------------------------------------------------------- scripted model


class Script:
    """Stands in for chat.complete: records the prompts and answers by rule."""

    def __init__(self, answer):
        self.answer, self.prompts, self.kwargs = answer, [], []

    def __call__(self, model, tokenizer, prompts, **kwargs):
        self.prompts += list(prompts)
        self.kwargs.append(kwargs)
        return Completions(texts=[self.answer(p) for p in prompts], stopped=[True] * len(prompts),
                           lengths=[1] * len(prompts))


STUB = torch.nn.Module()  # the scripted "model": only its train/eval flag is touched
RECORDS = [{"prompt": "Write about tea.", "soft_constraints": ["Be warm.", "Mention mornings."]},
           {"prompt": "Write about rivers.", "soft_constraints": ["Be formal."]},
           {"prompt": "Write about cats."}]
RESPONSES = ["Tea is lovely in the morning.", "Rivers flow.", "Cats sleep."]


def pointwise_rule(prompt):
    # satisfied iff the constraint is "Be warm." or "Be formal."; "Mention mornings." gets an unreadable answer
    if "[Constraint]\nMention mornings." in prompt:
        return "I am not sure."
    return "Yes" if ("[Constraint]\nBe warm." in prompt or "[Constraint]\nBe formal." in prompt) else "No"


def test_pointwise_prompts_carry_one_constraint_and_verdicts_land_right(monkeypatch):
    script = Script(pointwise_rule)
    monkeypatch.setattr(lj, "complete", script)
    v = judge_soft(LLMJudge(STUB, None, "pointwise"), RECORDS, RESPONSES)
    assert v.ok == [[True, False], [True], []]
    assert v.parsed == [[True, False], [True], []]
    assert v.unparseable == 1 and v.calls == 3
    assert len(script.prompts) == 3
    for p, (req, resp, con) in zip(script.prompts, [(0, 0, "Be warm."), (0, 0, "Mention mornings."),
                                                    (1, 1, "Be formal.")]):
        assert RECORDS[req]["prompt"] in p and RESPONSES[resp] in p and f"[Constraint]\n{con}" in p
        others = {c for r in RECORDS for c in r.get("soft_constraints", [])} - {con}
        assert not any(o in p for o in others)
    kw = script.kwargs[0]
    assert kw["temperature"] == 0.0 and kw["adapter_off"] is False and kw["max_new_tokens"] == 16


def test_batched_prompt_carries_all_constraints_numbered_and_verdicts_land_right(monkeypatch):
    def rule(prompt):
        if "Write about tea." in prompt:
            assert "1. Be warm.\n2. Mention mornings." in prompt and "Be formal." not in prompt
            return "1. no\n2. yes"
        assert "1. Be formal." in prompt and "2." not in prompt.split("[Constraints]")[1].split("For each")[0]
        return "1. maybe"

    script = Script(rule)
    monkeypatch.setattr(lj, "complete", script)
    v = judge_soft(LLMJudge(STUB, None, "batched"), RECORDS, RESPONSES)
    assert v.ok == [[False, True], [False], []]
    assert v.parsed == [[True, True], [False], []] and v.unparseable == 1
    assert v.calls == 2 and len(script.prompts) == 2  # the record without soft constraints costs no call
    assert script.kwargs[0]["max_new_tokens"] == 8 + 8 * 2


@pytest.mark.parametrize("mode", ["pointwise", "batched"])
def test_a_judge_that_reasons_first_gets_its_budget_per_constraint(monkeypatch, mode):
    script = Script(lambda prompt: "warm words: sunny. Answer: yes" if mode == "pointwise" else
                    "1. warm words: sunny. Answer: yes\n2. Answer: no")
    monkeypatch.setattr(lj, "complete", script)
    v = judge_soft(LLMJudge(STUB, None, mode, tokens_per_constraint=30), RECORDS[:1], RESPONSES[:1])
    assert v.ok == [[True, True] if mode == "pointwise" else [True, False]] and v.unparseable == 0
    assert script.kwargs[0]["max_new_tokens"] == 8 + 30 * (1 if mode == "pointwise" else 2)


@pytest.mark.parametrize("mode", ["pointwise", "batched"])
def test_identical_questions_are_asked_once(monkeypatch, mode):
    script = Script(lambda p: "1. yes\n2. yes" if mode == "batched" else "yes")
    monkeypatch.setattr(lj, "complete", script)
    recs = [RECORDS[0]] * 4 + [RECORDS[1]] * 4  # a GRPO batch: G rollouts per record
    texts = ["same"] * 3 + ["other"] + ["same"] * 4
    v = judge_soft(LLMJudge(STUB, None, mode), recs, texts)
    assert v.ok == [[True, True]] * 4 + [[True]] * 4
    unique = {"pointwise": 2 * 2 + 1, "batched": 2 + 1}[mode]  # (tea, same), (tea, other), (rivers, same)
    assert v.calls == len(script.prompts) == unique


def test_no_record_means_no_request_shown(monkeypatch):
    script = Script(lambda p: "yes")
    monkeypatch.setattr(lj, "complete", script)
    assert LLMJudge(STUB, None).check([(None, "text", ["Be warm."])]).ok == [[True]]
    assert "[Request]\n(not shown)" in script.prompts[0]


# ---------------------------------------------------------------------------------------------- templates


def test_templates_are_checked_at_start():
    with pytest.raises(ConfigError, match=r"--tpl: the pointwise judge template lacks the placeholder\(s\) "
                                          r"\{constraint\}"):
        LLMJudge(STUB, None, "pointwise", template="Is {response} fine?", option="--tpl")
    with pytest.raises(ConfigError, match=r"template: the batched judge template lacks .*\{response\}, "
                                          r"\{constraints\}"):
        LLMJudge(STUB, None, "batched", template="{prompt} only")
    with pytest.raises(ConfigError, match=r"uses \{constraints\}, which only the batched template fills"):
        LLMJudge(STUB, None, "pointwise", template="{response} {constraint} {constraints}")
    with pytest.raises(ConfigError, match="judge mode must be one of"):
        LLMJudge(STUB, None, "listwise")


def test_user_template_keeps_other_braces_and_fills_once(monkeypatch):
    script = Script(lambda p: "no")
    monkeypatch.setattr(lj, "complete", script)
    judge = LLMJudge(STUB, None, template='JSON {"a": 1} R={response} C={constraint}')
    judge.check([({"prompt": "p"}, "says {constraint}", ["Be brief."])])
    assert script.prompts == ['JSON {"a": 1} R=says {constraint} C=Be brief.']


# ---------------------------------------------------------------------------------------------- a real tiny model

WORDS = ["yes", "no", "Yes", "No", "1.", "2.", "maybe"] + [f"w{i}" for i in range(12)]


def tiny(seed=0):
    tok = word_tokenizer(WORDS)
    return tiny_model(vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      init_std=0.1, seed=seed), tok


ITEMS = [({"prompt": "w1 w2"}, "w3 w4 yes", ["w5", "w6 w7"]), ({"prompt": "w8"}, "w9", ["w10"]),
         ({"prompt": "w1 w2"}, "w3 w4 yes", ["w5", "w6 w7"])]


@pytest.mark.parametrize("mode", ["pointwise", "batched"])
def test_flow_on_a_tiny_model(mode):
    model, tok = tiny()
    v = LLMJudge(model, tok, mode, max_new_tokens=6).check(ITEMS)
    assert [len(r) for r in v.ok] == [2, 1, 2] and v.ok[0] == v.ok[2] and v.answers[0] == v.answers[2]
    assert v.calls == (3 if mode == "pointwise" else 2)
    for row_ok, row_parsed, row_answers, (_, _, cs) in zip(v.ok, v.parsed, v.answers, ITEMS):
        read = ([parse_answer(a) for a in row_answers] if mode == "pointwise"
                else parse_numbered(row_answers[0], len(cs)))
        assert row_ok == [r is True for r in read] and row_parsed == [r is not None for r in read]
    assert v.unparseable == sum(not p for row in v.parsed[:2] for p in row)  # the repeated item counts once


def lora(model, seed=0):
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g))
    return peft_model


@pytest.mark.parametrize("mode", ["pointwise", "batched"])
def test_base_judge_answers_as_the_base_and_leaves_the_adapter_on(mode):
    base, tok = tiny()
    reference = LLMJudge(base, tok, mode, max_new_tokens=6).check(ITEMS).answers
    policy = lora(tiny()[0])
    policy.train()
    ids = torch.tensor([tok("w1 w2 w3").input_ids])
    with torch.no_grad():
        before = policy(input_ids=ids).logits
    judge = load_judge("base", policy, tok, mode)
    judge.max_new_tokens = 6
    assert judge.check(ITEMS).answers == reference  # adapter off: the base's answers
    assert adapters_enabled(policy) and policy.training  # back on, back in train mode
    with torch.no_grad():
        torch.testing.assert_close(policy(input_ids=ids).logits, before)
    with policy.disable_adapter():
        assert not adapters_enabled(policy)
    on = LLMJudge(policy, tok, mode, max_new_tokens=6).check(ITEMS).answers
    assert on != reference  # the adapter changes the answers: the comparison above can fail


def test_load_judge_errors(tmp_path):
    model, tok = tiny()
    with pytest.raises(ConfigError, match="--judge_model=base needs a LoRA policy"):
        load_judge("base", model, tok)
    with pytest.raises(ModelError, match=f"--judge_model={tmp_path}: model folder .* has no weights"):
        load_judge(str(tmp_path))
