"""`run.py attention`: segmenting prompts into template / task / constraint / response tokens, the normalized
constraint score against eager attention, the per-record filter score, and the CLI end to end (two checkpoints)."""

import json
import math

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from minirlvr.commands import attention as attention_cmd
from minirlvr.evaluation import attention as R
from minirlvr.data import DataError, write_jsonl

TASK = "Write a short note about green tea. "
CONSTRAINT = "Your entire response should be in lowercase letters."
RECORDS = [
    {"key": "a", "prompt": TASK + CONSTRAINT, "constraint_spans": [[len(TASK), len(TASK + CONSTRAINT)]],
     "response": "green tea is calm and warm, and it smells of grass."},
    {"key": "b", "prompt": "Answer in two lines. Say why tea cools.", "constraint_spans": [[0, 20]],
     "response": "tea cools as it gives heat to the air\nand steam carries heat away"},
    {"key": "c", "prompt": "Describe coffee.", "response": "coffee is bitter."},  # no constraint: skipped
]
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny Qwen2 with a byte-level BPE tokenizer trained here, saved like a hub checkpoint."""
    path = tmp_path_factory.mktemp("tiny")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|pad|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator([r["prompt"] + " " + r["response"] for r in RECORDS] * 4, trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<|pad|>", eos_token="<|im_end|>")
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(path)
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    Qwen2ForCausalLM(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tok(model_dir):
    return AutoTokenizer.from_pretrained(model_dir)


def test_segments(tok):
    ids, seg, n = R.segment(tok, RECORDS[0], RECORDS[0]["response"], "x")
    assert len(ids) == len(seg) and n == len(tok(RECORDS[0]["response"], add_special_tokens=False)["input_ids"])
    assert seg[-n:] == [R.RESPONSE] * n and R.RESPONSE not in seg[:-n]
    text_of = lambda s: tok.decode([i for i, g in zip(ids, seg) if g == s])  # noqa: E731
    assert CONSTRAINT in text_of(R.CONSTRAINT) and "green tea" not in text_of(R.CONSTRAINT)
    assert TASK.strip() in text_of(R.TASK)
    assert "<|im_start|>" in text_of(R.TEMPLATE) and "assistant" in text_of(R.TEMPLATE)
    # Segments are contiguous in this order: template, task, constraint, template, response.
    runs = [s for i, s in enumerate(seg) if i == 0 or seg[i - 1] != s]
    assert runs == [R.TEMPLATE, R.TASK, R.CONSTRAINT, R.TEMPLATE, R.RESPONSE]


def test_bad_spans_name_the_field(tok):
    bad = dict(RECORDS[0], constraint_spans=[[5, 999]])
    with pytest.raises(DataError, match="x: field 'constraint_spans'"):
        R.segment(tok, bad, bad["response"], "x")
    with pytest.raises(DataError, match="x: field 'response'"):
        R.segment(tok, RECORDS[0], "", "x")
    with pytest.raises(R.SpanNotFound):
        R.segment(tok, RECORDS[2], RECORDS[2]["response"], "x")


def test_spans_from_verifier_descriptions(tok):
    # The embedded world's prompts: task text followed by the hard constraints' descriptions and soft constraints.
    from minirlvr.verifiers import describe

    ids_ = ["change_case:english_lowercase", "keywords:existence"]
    kwargs = [{}, {"keywords": ["tea"]}]
    hard = [describe(i, kw) for i, kw in zip(ids_, kwargs)]
    soft = "Use a warm, friendly tone."
    rec = {"prompt": " ".join([TASK.strip(), hard[0], soft, hard[1]]), "instruction_id_list": ids_,
           "kwargs": kwargs, "soft_constraints": [soft]}
    ids, seg, _ = R.segment(tok, rec, "fine.", "x")
    constraint = tok.decode([i for i, g in zip(ids, seg) if g == R.CONSTRAINT])
    assert all(h in constraint for h in hard) and soft in constraint and "green tea" not in constraint
    ids, seg, _ = R.segment(tok, rec, "fine.", "x", soft=False)
    assert soft in tok.decode([i for i, g in zip(ids, seg) if g == R.TASK])
    with pytest.raises(R.SpanNotFound, match="keywords:existence"):
        R.segment(tok, dict(rec, kwargs=[{}, {"keywords": ["coffee"]}]), "fine.", "x")


def test_score_matches_eager(model_dir, tok):
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    ids, seg, n = R.segment(tok, RECORDS[1], RECORDS[1]["response"], "x")
    score, mass = R.record_scores(model, ids, seg, n)  # (n_layers, H) each
    model.set_attn_implementation("eager")
    with torch.no_grad():
        att = model(input_ids=torch.tensor([ids]), output_attentions=True).attentions
    is_c = torch.tensor(seg) == R.CONSTRAINT  # (T,)
    T = len(ids)
    for layer, a in enumerate(att):
        m = a[0, :, T - n:, :][..., is_c].sum(-1)  # (H, n) mass of each response token on the constraint
        share = is_c.sum() / torch.arange(T - n + 1, T + 1)  # (n,)
        torch.testing.assert_close(mass[layer], m.mean(-1), atol=1e-5, rtol=0)
        torch.testing.assert_close(score[layer], (m / share).mean(-1), atol=1e-4, rtol=1e-5)


def test_filter_scores(model_dir, tok):
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    got = R.constraint_attention_scores(model, tok, RECORDS)
    assert len(got) == 3 and math.isnan(got[2])
    for rec, value in zip(RECORDS[:2], got):
        score, _ = R.record_scores(model, *R.segment(tok, rec, rec["response"], "x"))
        assert value == pytest.approx(float(score.mean()), rel=1e-6)
    only_last = R.constraint_attention_scores(model, tok, RECORDS[:1], layers=[1])[0]
    assert only_last == pytest.approx(float(R.record_scores(model, *R.segment(tok, RECORDS[0], RECORDS[0][
        "response"], "x"))[0][1].mean()), rel=1e-6)


def _adapter(model_dir, path, seed):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    lora = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "k_proj"], init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(path)


def test_cli_two_checkpoints(model_dir, tmp_path, capsys):
    _adapter(model_dir, tmp_path / "a1", seed=1)
    _adapter(model_dir, tmp_path / "a2", seed=2)
    data = tmp_path / "data.jsonl"
    write_jsonl(data, [{k: v for k, v in r.items() if k != "response"} for r in RECORDS])
    write_jsonl(tmp_path / "resp.jsonl", [{"prompt": r["prompt"], "response": r["response"]} for r in RECORDS])
    out = tmp_path / "out"
    attention_cmd.main(["--model", str(model_dir), "--adapter", str(tmp_path / "a1"), "--compare-adapter", str(tmp_path / "a2"),
            "--data", str(data), "--responses", str(tmp_path / "resp.jsonl"), "--out", str(out)])
    assert "backend blockwise" in capsys.readouterr().out
    scores = json.loads((out / "scores.json").read_text())
    first, second = (torch.tensor(c["score"]) for c in scores["checkpoints"])
    assert first.shape == (2, 4) and not torch.allclose(first, second)  # the adapters differ
    torch.testing.assert_close(torch.tensor(scores["diff"]), second - first)
    assert scores["records"] == 2 and [k for k, _ in scores["skipped"]] == ["c"]
    # The first checkpoint's table is the mean of the per-record scores of model + adapter 1.
    from peft import PeftModel

    m1 = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa"),
                                   tmp_path / "a1").eval()
    per = R.constraint_attention_scores(m1, AutoTokenizer.from_pretrained(model_dir), RECORDS[:2])
    assert float(first.mean()) == pytest.approx(sum(per) / 2, rel=1e-5)
    report = (out / "report.md").read_text()
    assert "| layer | h0 | h1 | h2 | h3 | mean |" in report and "second - first" in report and "- c:" in report
    assert (out / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [json.loads(line) for line in (out / "per_record.jsonl").read_text().splitlines()]
    assert [(r["checkpoint"], r["key"]) for r in rows] == [("first", "a"), ("first", "b"), ("second", "a"),
                                                          ("second", "b")]


def test_cli_missing_response_names_the_record_and_the_option_before_loading_a_model(model_dir, tmp_path,
                                                                                     monkeypatch):
    data = tmp_path / "data.jsonl"
    write_jsonl(data, [{k: v for k, v in RECORDS[0].items() if k != "response"}])
    monkeypatch.setattr(R, "load", lambda *a: pytest.fail("a model was loaded"))
    with pytest.raises(SystemExit, match=r"data.jsonl:record 1: no field 'response'.*--responses generate"):
        attention_cmd.main(["--model", str(model_dir), "--data", str(data), "--out", str(tmp_path / "o")])


def test_cli_generates_the_responses_when_asked(model_dir, tmp_path, capsys, monkeypatch):
    """`--responses generate`: the first checkpoint answers every record greedily (saved to OUT/responses.jsonl),
    and both checkpoints are scored on those answers: the same numbers as passing that file back."""
    _adapter(model_dir, tmp_path / "a1", seed=1)
    _adapter(model_dir, tmp_path / "a2", seed=2)
    data = tmp_path / "data.jsonl"
    write_jsonl(data, [{k: v for k, v in r.items() if k != "response"} for r in RECORDS])
    common = ["--model", str(model_dir), "--adapter", str(tmp_path / "a1"), "--compare-adapter",
              str(tmp_path / "a2"), "--data", str(data), "--max-new-tokens", "12", "--device", "cpu"]
    monkeypatch.setattr("minirlvr.engine.progress.PROGRESS_EVERY_S", 0.0)  # no terminal: progress as lines
    attention_cmd.main(common + ["--responses", "generate", "--out", str(tmp_path / "gen")])
    printed = capsys.readouterr().out
    assert "3 responses generated" in printed and "attention: responses: 3/3 prompts" in printed
    assert "attention first: 2/2 records" in printed and "attention second: 2/2 records" in printed
    written = [json.loads(line) for line in (tmp_path / "gen" / "responses.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in written] == [r["prompt"] for r in RECORDS]
    assert all(r["response"] for r in written[:2])  # the tiny model answers something (never EOS first here)
    attention_cmd.main(common + ["--responses", str(tmp_path / "gen" / "responses.jsonl"), "--out",
                                 str(tmp_path / "again")])
    gen, again = (json.loads((tmp_path / d / "scores.json").read_text()) for d in ("gen", "again"))
    assert gen["records"] == 2 and [k for k, _ in gen["skipped"]] == ["c"]
    assert [c["score"] for c in gen["checkpoints"]] == [c["score"] for c in again["checkpoints"]]
    assert gen["diff"] == again["diff"]
