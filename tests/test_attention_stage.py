"""The pipeline's attention stage (evaluation/attention.stage_scores, report.attention_section): on a tiny Qwen2
whose attention to the constraint tokens is set by construction (q/k weights), the stage reports the score the
construction implies, per head, per group of constraints; the change from a uniform start has the expected sign,
and the report marks the right head; the stage's "all" numbers equal `run.py attention` on the same policy,
records and responses."""

import json
import math

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from minirlvr.commands import attention as attention_cmd
from minirlvr.data import write_jsonl
from minirlvr.evaluation import attention as R
from minirlvr.pipeline import report

CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
# Constraint text in capitals that nothing else uses: its tokens are the constraint's alone.
TASK = "write a short note about green tea."
C1, C2 = "XQZ VVK JJW", "KKPW QQXV"
PROMPT = f"{TASK} {C1} {C2}"
RECORDS = [
    {"key": "two", "prompt": PROMPT, "response": "green tea is calm and warm and it smells of grass",
     "constraint_spans": [[PROMPT.index(c), PROMPT.index(c) + len(c)] for c in (C1, C2)],
     "constraint_labels": [{"kind": "hard", "id": "x", "seen": True}, {"kind": "soft", "id": "y", "seen": False}]},
    {"key": "one", "prompt": f"{C1} tell me about bread.", "response": "bread is warm and good",
     "constraint_spans": [[0, len(C1)]], "constraint_labels": [{"kind": "hard", "id": "x", "seen": True}]},
]
LOGITS = [4.0, 1.0, 0.0, -4.0]  # layer 0, per head: the attention logit of a constraint key (0 for every other key)
HEAD_DIM = 16


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=["<|pad|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator([r["prompt"] + " " + r["response"] for r in RECORDS] * 4, trainer=trainer)
    t = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<|pad|>", eos_token="<|im_end|>")
    t.chat_template = CHAT_TEMPLATE
    t.save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def constraint_ids(tok):
    """Token ids that occur in constraint text and nowhere else in the records (checked: the construction needs it)."""
    inside, outside = set(), set()
    for rec in RECORDS:
        ids, seg, _, _ = R.segment_spans(tok, rec, rec["constraint_spans"], rec["response"], "x")
        for i, s in zip(ids, seg):
            (inside if s == R.CONSTRAINT else outside).add(i)
    assert inside and not inside & outside
    return sorted(inside)


def forced_model(tok, logits):
    """A 2-layer Qwen2 (4 query heads, 2 KV heads) in which, in layer 0, head h gives every constraint key the
    logit logits[h] and every other key 0; layer 1 gives every key 0 (uniform attention).

    Constraint tokens embed as e_0 (all others have 0 there), so after RMSNorm their dim 0 is sqrt(64) = 8;
    k = 8 * (dim 0 -> dim p) with p = HEAD_DIM / 2 - 1, the rotary pair that turns slowest (rope_theta = 1e12:
    under 1e-8 rad at these positions); q = bias logits[h] / (8 * scaling) on dim p."""
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=HEAD_DIM, max_position_embeddings=256,
                      rope_theta=1e12)
    model = Qwen2ForCausalLM(cfg).eval()
    p, scaling = HEAD_DIM // 2 - 1, HEAD_DIM ** -0.5
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb[:, 0] = 0
        for i in constraint_ids(tok):
            emb[i] = 0
            emb[i, 0] = 1
        for layer, values in enumerate([logits, [0.0] * 4]):
            attn = model.model.layers[layer].self_attn
            attn.q_proj.weight.zero_()
            attn.q_proj.bias.zero_()
            attn.k_proj.weight.zero_()
            attn.k_proj.bias.zero_()
            for h, v in enumerate(values):
                attn.q_proj.bias[h * HEAD_DIM + p] = v / (8 * scaling)
            for kv in range(2):
                attn.k_proj.weight[kv * HEAD_DIM + p, 0] = 1.0
    return model


def expected(tok, rec, members, logit):
    """The score the construction implies for the constraints `members` of `rec`: keys of every constraint get
    `logit`, others 0; mass of the group over its share of the visible keys, mean over response tokens."""
    ids, seg, n, owner = R.segment_spans(tok, rec, rec["constraint_spans"], rec["response"], "x")
    n_all = seg.count(R.CONSTRAINT)
    n_g = sum(owner.count(j) for j in members)
    T, e = len(ids), math.exp(logit)
    return sum(n_g * e / (n_all * e + (t + 1 - n_all)) / (n_g / (t + 1)) for t in range(T - n, T)) / n


def test_stage_reports_the_constructed_attention(tok):
    model = forced_model(tok, LOGITS).train()  # as a policy comes out of training: the stage measures in eval mode
    modes = []
    model.model.layers[0].register_forward_pre_hook(lambda m, args: modes.append(m.training))
    out = R.stage_scores(model, tok, RECORDS)
    assert modes == [False, False] and model.training  # eval mode inside, the caller's mode restored after
    assert out["records"] == 2 and not out["skipped"]
    heads = torch.tensor(out["heads"])  # (2 layers, 4 heads), "all" group, mean over the two records
    want = torch.tensor([[sum(expected(tok, r, range(len(r["constraint_spans"])), a) for r in RECORDS) / 2
                          for a in LOGITS], [1.0] * 4])
    torch.testing.assert_close(heads, want, rtol=1e-4, atol=1e-4)
    assert heads[0, 0] > heads[0, 1] > 1 and heads[0, 3] < 1  # towards the constraint > 1, away < 1
    # groups: "seen" / "hard" = C1 of both records; "unseen" / "soft" = C2 of the first only
    g = out["groups"]
    assert {k: v["n"] for k, v in g.items()} == {"all": 2, "seen": 2, "hard": 2, "unseen": 1, "soft": 1}
    for group, members in (("seen", [0]), ("unseen", [1])):
        recs = RECORDS if group == "seen" else RECORDS[:1]
        layer0 = sum(sum(expected(tok, r, members, a) for r in recs) / len(recs) for a in LOGITS) / 4
        assert g[group]["layers"][0] == pytest.approx(layer0, rel=1e-4)
        assert g[group]["layers"][1] == pytest.approx(1.0, rel=1e-4)
        assert g[group]["score"] == pytest.approx((layer0 + 1) / 2, rel=1e-4)
    assert g["hard"] == g["seen"] and g["soft"] == g["unseen"]
    assert [r["key"] for r in out["per_record"]] == ["two", "one"]


def test_change_from_a_uniform_start_has_the_constructed_sign_and_head(tok, tmp_path):
    start = R.stage_scores(forced_model(tok, [0.0] * 4), tok, RECORDS)
    toward = R.stage_scores(forced_model(tok, LOGITS), tok, RECORDS)
    away = R.stage_scores(forced_model(tok, [-4.0] * 4), tok, RECORDS)
    assert start["groups"]["all"]["score"] == pytest.approx(1.0, rel=1e-5)  # uniform attention: exactly its share
    runs = [{"variant": "toward", "seed": 0, "att": toward, "row": {"m": 0.3}},
            {"variant": "away", "seed": 0, "att": away, "row": {"m": -0.2}},
            {"variant": "away", "seed": 1, "att": away, "row": {"m": -0.2}}]
    changes = report.layer_changes(start, runs)
    layers, top = changes["toward"]
    assert layers[0] > 0.5 and layers[1] == pytest.approx(0.0, abs=1e-4)
    assert top[0][:2] == (0, 0) and top[0][2] > 0  # layer 0's largest change: head 0, the one forced hardest
    assert changes["away"][0][0] < -0.5
    lines = report.attention_section(start, {"m": 0.0}, runs, ("m", "m"), str(tmp_path / "a.png"))
    text = "\n".join(lines)
    row = next(line for line in lines if line.startswith("| change, all constraints |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[2]) > 0 and float(cells[3].split(" ± ")[0]) < 0  # toward up, away down
    assert cells[3].endswith("± 0.000")  # two seeds, the same policy: no seed spread
    assert "labelled as the paper's" in text and "Pearson r = +1.00, n = 3 runs" in text
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stage_equals_the_command_on_the_same_policy_records_and_responses(tok, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    model_dir = tmp_path / "model"
    forced_model(tok, LOGITS).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    torch.manual_seed(3)
    lora = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "k_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), lora).save_pretrained(tmp_path / "adapter")
    policy = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa"),
                                       tmp_path / "adapter").eval()
    stage = R.stage_scores(policy, tok, RECORDS)
    write_jsonl(tmp_path / "records.jsonl", RECORDS)  # what the stage writes beside attention.json
    attention_cmd.main(["--model", str(model_dir), "--adapter", str(tmp_path / "adapter"), "--data",
                        str(tmp_path / "records.jsonl"), "--out", str(tmp_path / "out"), "--device", "cpu"])
    cmd = json.loads((tmp_path / "out" / "scores.json").read_text())["checkpoints"][0]
    # equal up to float rounding: the stage sums the mass of each constraint's segment, the command gets their
    # union as one segment (another summation order); a different policy, record or response moves them by >1e-2
    torch.testing.assert_close(torch.tensor(stage["heads"]), torch.tensor(cmd["score"]), rtol=1e-5, atol=1e-6)
    assert stage["groups"]["all"]["score"] == pytest.approx(float(torch.tensor(cmd["score"]).mean()), rel=1e-6)
    # the stage's records carry their labels: the command splits by group with the stage's own function
    assert cmd["groups"] == stage["groups"]
    assert "### By group of constraints" in (tmp_path / "out" / "report.md").read_text()


def test_stage_record_labels_and_spans():
    from minirlvr.verifiers import describe

    kw = [{}, {"keywords": ["tea"]}]
    ids = ["change_case:english_lowercase", "keywords:existence"]
    hard = [describe(i, k) for i, k in zip(ids, kw)]
    soft = "Use a warm, friendly tone."
    rec = {"key": 7, "prompt": f"Tell me about tea. {hard[1]} {soft} {hard[0]}", "instruction_id_list": ids,
           "kwargs": kw, "soft_constraints": [soft, "not in the prompt"], "unseen": [None, "type"]}
    out = R.stage_record(rec, "fine.")
    assert [rec["prompt"][a:b] for a, b in out["constraint_spans"]] == [hard[0], hard[1], soft]
    assert [(c["kind"], c["seen"]) for c in out["constraint_labels"]] == [("hard", True), ("hard", False),
                                                                          ("soft", True)]
    assert out["response"] == "fine." and out["key"] == 7
    assert R.stage_record(rec, "x", unseen=["type", None])["constraint_labels"][0]["seen"] is False


def test_empty_responses_and_unlocatable_constraints_are_skipped(tok):
    recs = [dict(RECORDS[1], response=""), dict(RECORDS[1], key="none", constraint_spans=[], constraint_labels=[]),
            RECORDS[1]]
    out = R.stage_scores(forced_model(tok, LOGITS), tok, recs)
    assert out["records"] == 1 and [k for k, _ in out["skipped"]] == ["one", "none"]
    assert "empty response" in out["skipped"][0][1] and "cover no token" in out["skipped"][1][1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the stage on a GPU (the compiled Triton kernel) needs CUDA")
def test_stage_on_a_gpu_uses_the_triton_kernel_and_reports_the_same(tok, monkeypatch):
    from minirlvr.kernels import attention as kernel

    used, real = [], kernel.attention_mass

    def spy(*args, backend=None, **kw):
        used.append(kernel.resolve_backend(backend, args[0].device))
        return real(*args, backend=backend, **kw)

    monkeypatch.setattr("minirlvr.evaluation.attention_hook.attention_mass", spy)
    cpu = R.stage_scores(forced_model(tok, LOGITS), tok, RECORDS)
    used.clear()
    gpu = R.stage_scores(forced_model(tok, LOGITS).cuda(), tok, RECORDS)
    assert used and set(used) == {"triton"}  # the real presets' path: the stage's default backend on a GPU
    torch.testing.assert_close(torch.tensor(gpu["heads"]), torch.tensor(cpu["heads"]), rtol=1e-4, atol=1e-4)
    for g, v in cpu["groups"].items():
        assert gpu["groups"][g]["score"] == pytest.approx(v["score"], rel=1e-4), g


def test_changes_are_matched_by_prompt():
    """A policy that answers a prompt with nothing has no score there: its change is taken over the prompts both
    policies scored, not against the start's mean over all of them."""
    start = {"per_record": [{"key": "a", "all": 1.0, "soft": 2.0}, {"key": "b", "all": 3.0}]}
    run = {"per_record": [{"key": "b", "all": 3.5}]}  # "a" was skipped (empty response)
    assert report.att_change(start, run, "all") == pytest.approx(0.5)
    assert math.isnan(report.att_change(start, run, "soft")) and math.isnan(report.att_change(start, None, "all"))
    assert report.paired_se(start, {"per_record": [{"key": "a", "all": 2.0}, {"key": "b", "all": 3.0}]}) == \
        pytest.approx(0.5)  # changes 1 and 0: sd 0.707 over sqrt(2)


def _att(all_, unseen, n=6, spread=0.01):
    """A synthetic attention.json: n prompts, per-prompt scores around `all_` / `unseen` (alternating +-spread)."""
    rows = [{"key": f"k{i}", "all": all_ + spread * (-1) ** i, "unseen": unseen + spread * (-1) ** i}
            for i in range(n)]
    return {"records": n, "per_record": rows, "heads": [[all_, all_]],
            "groups": {"all": {"n": n, "score": all_}, "unseen": {"n": n, "score": unseen}}}


@pytest.mark.parametrize("hard, verdict", [((1.5, 1.4), "agrees with"), ((0.6, 0.7), "disagrees with"),
                                           ((1.005, 1.0), "is inconclusive about")])
def test_the_verdict_beside_the_papers_claim(hard, verdict, tmp_path):
    start = _att(1.0, 1.0)
    runs = [{"variant": "hard-only", "seed": s, "att": _att(hard[0] + 0.01 * s, hard[1]), "row": {"m": 0.1}}
            for s in (0, 1)]
    runs += [{"variant": v, "seed": 0, "att": _att(1.02, 1.0), "row": {"m": 0.0}} for v in ("soft-only", "mixed")]
    text = "\n".join(report.attention_section(start, {"m": 0.0}, runs, ("m", "gain"), str(tmp_path / "a.png")))
    assert f"this run {verdict} the paper's claim" in text
    assert "Ours (2 seeds, 6 prompts, 6 with an unseen type)" in text and "all ±0.005 (seed sd 0.005, prompt SE 0.000)" in text
