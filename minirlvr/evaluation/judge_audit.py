"""`python run.py judge-audit`: how often does an LLM judge miss a violated constraint?

    python run.py judge-audit --model M --data D --responses R|generate [--modes pointwise,batched] [--out DIR]
                              [--adapter A] [--4bit] [--limit N]

The judge is asked about HARD constraints, whose truth the verifiers know: each record's instruction ids are put
in English (`verifiers.describe`) and sent to the judge with the response, one per call ("pointwise") or all of
a record's in one call ("batched"), exactly as the training reward would ask about soft constraints. For each mode
and each constraint type (instruction id) it reports, against the verifiers' strict verdicts:
- precision: of the constraints the judge passed, the fraction truly satisfied (positive class: satisfied);
  the precision of the reward it would give;
- recall: of the truly satisfied constraints, the fraction the judge passed (positive class: satisfied);
- recall on violations: of the truly violated constraints, the fraction the judge said were not satisfied
  (positive class: violated). This is the paper's number (arXiv 2601.04954, Qwen3-32B as the judge: about
  21-31% with all constraints in one call, 55-59% one at a time), printed beside ours and labelled as the paper's.
An unreadable answer scores "not satisfied", as in training, so it counts as a caught violation there; the
count of unreadable answers and the recall on violations over readable answers only are reported too.

`--responses` is a JSONL file of {"prompt", "response"} (as `run.py verify` reads it, matched to the data by prompt
text) or `generate`: responses sampled from --model (with --adapter) first, saved to DIR/responses.jsonl. The judge
is --model itself; with --adapter it answers as the base, adapter switched off, as `--judge_model=base` in
training. Writes DIR/audit.md, DIR/audit.json (every question, verdict and raw answer) and DIR/recall.png.
This file does not train or change the judge; its templates are llm_judge.py's unless --template-* replace them.
"""

import os
from collections import defaultdict

from minirlvr import verifiers
from minirlvr.engine.config import ConfigError
from minirlvr.data import DataError, prompt_text, read_records, to_json, write_atomic, write_jsonl
from minirlvr.reward.judge import precision_recall
from minirlvr.reward.constraint import hard_checks

MODES = ("pointwise", "batched")
# The paper's judge recall on violated constraints, Qwen3-32B as the judge (arXiv 2601.04954): a range, not ours.
PAPER_RECALL = {"batched": (0.21, 0.31), "pointwise": (0.55, 0.59)}
PAPER_LABEL = "paper (Qwen3-32B judge)"


def questions(records, pairs, data_path="data"):
    """One (record, response, [descriptions], [(key, id, truth)]) per response whose record has hard constraints."""
    out = []
    for k, response in pairs:
        rec = records[k]
        ids = rec.get("instruction_id_list", [])
        if not ids:
            continue
        kwargs = rec.get("kwargs", [{} for _ in ids])
        try:
            texts = [verifiers.describe(iid, kw or {}) for iid, kw in zip(ids, kwargs)]
            truth = hard_checks(rec, response)
        except verifiers.VerifierError as e:
            raise DataError(f"{data_path}: record {k + 1} (key {rec.get('key')!r}): {e}") from None
        out.append((rec, response, texts, [(rec.get("key", k), iid, ok == 1.0) for iid, ok in truth]))
    return out


def metrics(judged, truth, parsed):
    """The audit's numbers for parallel lists of judge verdicts (True = satisfied), verifier truth and
    readability. Precision / recall: positive class "satisfied"; recall_violated: positive class "violated"."""
    n, violated = len(truth), sum(not t for t in truth)
    prec_v, rec_v = precision_recall(judged, truth)  # violations positive
    prec_s, rec_s = precision_recall([not j for j in judged], [not t for t in truth])  # satisfied positive
    readable = [(j, t) for j, t, p in zip(judged, truth, parsed) if p]
    _, rec_v_read = precision_recall([j for j, _ in readable], [t for _, t in readable])
    return {"n": n, "violated": violated, "judged_violated": sum(not j for j in judged),
            "precision": prec_s, "recall": rec_s, "recall_violated": rec_v, "precision_violated": prec_v,
            "accuracy": sum(j == t for j, t in zip(judged, truth)) / n if n else float("nan"),
            "unparseable": sum(not p for p in parsed), "recall_violated_readable": rec_v_read}


def audit_mode(judge, qs):
    """Ask the judge every question of `qs` in its mode: (overall metrics, per-type metrics, verdict rows)."""
    v = judge.check([(rec, response, texts) for rec, response, texts, _ in qs])
    rows = []
    for (rec, response, texts, facts), ok, parsed, answers in zip(qs, v.ok, v.parsed, v.answers):
        for text, (key, iid, truth), j, p, a in zip(texts, facts, ok, parsed, answers):
            rows.append({"key": key, "id": iid, "constraint": text, "truth": truth, "judged": j, "parsed": p,
                         "answer": a})
    by_type = defaultdict(list)
    for r in rows:
        by_type[r["id"]].append(r)

    def of(rs):
        return metrics([r["judged"] for r in rs], [r["truth"] for r in rs], [r["parsed"] for r in rs])

    overall = dict(of(rows), calls=v.calls, unparseable_calls=v.unparseable)
    return overall, {iid: of(rs) for iid, rs in sorted(by_type.items())}, rows


def pct(x):
    return "n/a" if x != x else f"{100 * x:.1f}"


def format_table(result):
    """Markdown: one block per mode, the overall row first, then one row per constraint type."""
    lines = [f"### Judge audit: {result['model']} judging {result['n_responses']} responses "
             f"({result['n_questions']} hard constraints, truth by the verifiers)", "",
             "precision / recall: positive class = satisfied (precision = of the constraints the judge passed, % truly "
             "satisfied). recall on violations: positive class = violated (of the truly violated constraints, % the "
             "judge said not satisfied: the paper's number). Unreadable answers score not satisfied; the last column "
             "leaves them out.", ""]
    head = ("| mode | constraint type | n | violated | precision | recall | recall on violations | "
            f"{PAPER_LABEL}: recall on violations | unparseable | recall on violations, readable only |")
    for mode, res in result["modes"].items():
        lo, hi = PAPER_RECALL[mode]
        lines += [head, "|---" * 10 + "|"]
        for name, m in [("all", res["overall"])] + list(res["per_type"].items()):
            paper = f"{100 * lo:.0f}-{100 * hi:.0f}" if name == "all" else ""
            lines.append(f"| {mode} | {name} | {m['n']} | {m['violated']} | {pct(m['precision'])} | "
                         f"{pct(m['recall'])} | {pct(m['recall_violated'])} | {paper} | {m['unparseable']} | "
                         f"{pct(m['recall_violated_readable'])} |")
        lines.append("")
    return "\n".join(lines)


def plot(result, path):
    """Recall on violations per mode: ours as bars, the paper's range as a band beside each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(result["modes"])
    fig, ax = plt.subplots(figsize=(4 + len(modes), 3.5))
    for i, mode in enumerate(modes):
        ours = result["modes"][mode]["overall"]["recall_violated"]
        ax.bar(i - 0.2, 0 if ours != ours else 100 * ours, 0.4, color="tab:red", label="ours" if i == 0 else None)
        lo, hi = PAPER_RECALL[mode]
        ax.bar(i + 0.2, 100 * (hi - lo), 0.4, bottom=100 * lo, color="tab:gray", alpha=0.6,
               label=f"{PAPER_LABEL}, range" if i == 0 else None)
    ax.set_xticks(range(len(modes)), modes)
    ax.set_ylabel("recall on violated constraints (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"judge: {os.path.basename(result['model'].rstrip('/'))}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def read_template(path, option):
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"{option}: cannot read {path!r} ({e.strerror})") from None


def run(args):
    from minirlvr.engine.chat import complete
    from minirlvr.reward.llm_judge import LLMJudge, check_template
    from minirlvr.engine.model import load_for_inference
    from minirlvr.evaluation.verify import match, read_responses

    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ConfigError(f"--modes: expected a comma-separated subset of {','.join(MODES)}, got {args.modes!r}")
    templates = {m: read_template(getattr(args, f"template_{m}"), f"--template-{m}") for m in modes}
    for m in modes:  # a bad template fails before any model is loaded
        check_template(templates[m], m, f"--template-{m}")
    records = read_records(args.data)
    model, tokenizer = load_for_inference(args.model, args.adapter, args.load_in_4bit, args.device)
    os.makedirs(args.out, exist_ok=True)
    unmatched, missing = [], []
    if args.responses == "generate":
        recs = [r for r in records if r.get("instruction_id_list")][:args.limit]
        out = complete(model, tokenizer, recs, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                       seed=args.seed, progress=True, desc="responses")
        write_jsonl(os.path.join(args.out, "responses.jsonl"),
                    [{"prompt": prompt_text(r), "response": t} for r, t in zip(recs, out.texts)])
        index = {id(r): k for k, r in enumerate(records)}
        pairs = [(index[id(r)], t) for r, t in zip(recs, out.texts)]
    else:
        pairs, unmatched, missing = match(args.data, records, args.responses, read_responses(args.responses))
    qs = questions(records, pairs, args.data)[:args.limit]
    if not qs:
        raise DataError(f"no response to a record with hard constraints: nothing to audit ({args.data}, "
                        f"{args.responses})")
    result = {"model": args.model, "adapter": args.adapter, "judge_is_base_with_adapter_off": args.adapter is not None,
              "data": args.data, "responses": args.responses, "n_responses": len(qs),
              "n_questions": sum(len(q[3]) for q in qs), "unmatched_responses": len(unmatched),
              "records_without_response": len(missing), "positive_class": {
                  "precision, recall": "satisfied", "recall_violated, precision_violated": "violated"},
              "paper_recall_violated": {m: {"low": lo, "high": hi, "judge": "Qwen3-32B", "source": "arXiv 2601.04954"}
                                        for m, (lo, hi) in PAPER_RECALL.items()},
              "modes": {}}
    verdicts = {}
    for mode in modes:
        judge = LLMJudge(model, tokenizer, mode, adapter_off=args.adapter is not None, template=templates[mode],
                         option=f"--template-{mode}", batch_rows=args.batch_rows, progress=True)
        overall, per_type, rows = audit_mode(judge, qs)
        result["modes"][mode] = {"overall": overall, "per_type": per_type,
                                 "unreadable_examples": [r["answer"] for r in rows if not r["parsed"]][:10]}
        verdicts[mode] = rows
    text = format_table(result)
    write_atomic(os.path.join(args.out, "audit.md"), text + "\n")
    write_atomic(os.path.join(args.out, "audit.json"),
                 to_json({**result, "verdicts": verdicts}, indent=1, ensure_ascii=False) + "\n")
    plot(result, os.path.join(args.out, "recall.png"))
    return result, text
