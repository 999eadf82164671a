"""`python run.py attention`: how much a model's responses attend to the constraint text of their instructions.

    python run.py attention --model PATH [--adapter PATH] --data FILE.jsonl [--responses FILE.jsonl | generate]
                            [--compare-adapter PATH] [--out DIR] [--backend NAME] [--limit N] [--hard-only]
                            [--4bit]

The paper explains why high-precision rewards generalize by attention: training teaches the model to look at the
constraints of an instruction. To measure it, every prompt + response is cut into four segments of keys,

    0 chat template | 1 task text | 2 constraint text | 3 response

and for each layer and head we take, over the response tokens, the attention mass they put on the constraint
text divided by the constraint text's share of the keys each of them can see (causal: the keys before it):

    score[layer, head] = mean over records of  mean over response tokens t of  mass_t(constraint) / (n_c / (t + 1))

(t: the token's position in prompt + response, from 0, so t + 1 keys are visible; n_c: constraint tokens).

1 means "no more than its share", 2 "twice its share". Records count equally, whatever their length. With
--compare-adapter, the same for a second checkpoint (model + that adapter) and the difference second - first.
Outputs in --out: report.md (tables), heatmap.png (layers x heads; colours centred at 1, or at 0 for the difference,
on a scale the colourbar states: colour_scale), scores.json, per_record.jsonl.

Where the constraint text is: a record's explicit character spans into its prompt text
(`"constraint_spans": [[start, end], ...]`), else each hard instruction's description from
`minirlvr.verifiers.describe(id, kwargs)` and each of its `soft_constraints` (unless --hard-only), found verbatim
in the prompt (how the embedded world writes prompts).
Records whose constraint text cannot be located are skipped and listed in the report, never silently.
The response is the record's `response` field, or the line of --responses with the same prompt, or with
`--responses generate` the first checkpoint's greedy answer (the command, commands/attention.py, generates it).

`constraint_attention_scores` gives one such number per record, for data refinement. Our reading of the paper,
which does not spell out a filter: a (prompt, response) pair whose response barely attends to the constraints
teaches little about following them. The threshold is the caller's choice.

The pipeline's attention stage (pipeline/reproduce.py) calls `stage_scores` on `stage_record`s: held-out records
with a policy's own response and each constraint's span and labels (hard / soft, type seen in training or not).
Every constraint is then its own segment of one forward pass, and a group of constraints (all, seen, unseen, hard,
soft) is scored as above with only its own text as "constraint" (the other constraints count as task text). Group
"all" is the number this command gives on the same records (up to float summation order), and `run.py attention`
on the stage's records file reports the groups too, with this same function.

Not here: generation (responses are given), sliding-window models, any training.
"""

import math

import torch

from minirlvr.engine.progress import Progress
from minirlvr.evaluation.attention_hook import collect_attention_mass
from minirlvr.data import DataError, prompt_text

SEGMENTS = ("template", "task", "constraint", "response")
TEMPLATE, TASK, CONSTRAINT, RESPONSE = range(4)


class SpanNotFound(DataError):
    """A record whose constraint text cannot be located: skipped and reported, not fatal."""


def constraint_spans(record, text, where, soft=True):
    """Character spans [(start, end), ...] of the constraint text inside the prompt text `text`: explicit spans,
    else the hard constraints' descriptions and (if `soft`) the soft constraints' texts, each found verbatim."""
    if "constraint_spans" in record:
        spans = record["constraint_spans"]
        ok = isinstance(spans, list) and all(
            isinstance(s, list) and len(s) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in s)
            and 0 <= s[0] < s[1] <= len(text) for s in spans)
        if not ok:
            raise DataError(f"{where}: field 'constraint_spans' must be a list of [start, end] character offsets "
                            f"with 0 <= start < end <= {len(text)} (the prompt's length)")
        return [tuple(s) for s in spans]
    ids, kwargs = record.get("instruction_id_list", []), record.get("kwargs", [])
    texts = []
    if ids:
        from minirlvr.verifiers import describe  # imported here: only this path needs the verifier set

        texts += [(f"the description of '{iid}'", describe(iid, kw)) for iid, kw in zip(ids, kwargs)]
    if soft:
        texts += [(f"soft constraint {j}", c) for j, c in enumerate(record.get("soft_constraints", []))]
    if not texts:
        raise SpanNotFound(f"{where}: no 'constraint_spans', and no constraint to look for")
    spans = []
    for what, desc in texts:
        start = text.find(desc)
        if start < 0:
            raise SpanNotFound(f"{where}: {what} is not in the prompt: {desc!r}")
        spans.append((start, start + len(desc)))
    return spans


def segment(tok, record, response, where, soft=True):
    """Token ids of chat(prompt) + response, their segment ids, and the response length in tokens.

    Prompt and response are tokenized apart and concatenated, as the sampler sees them. A prompt token joins the
    first segment it overlaps among constraint, task, template (byte-level BPE can glue a space across a border).
    """
    spans = constraint_spans(record, prompt_text(record), where, soft)
    ids, seg, n, _ = segment_spans(tok, record, spans, response, where)
    return ids, seg, n


def segment_spans(tok, record, spans, response, where):
    """segment() for given constraint character spans; also returns, per token, the index of the first span it
    overlaps (-1 for a token of no constraint): what the stage splits the constraint text by."""
    messages = record["messages"] if "messages" in record else [{"role": "user", "content": record["prompt"]}]
    user = prompt_text(record)
    chat = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    u0 = chat.rfind(user)  # the last user turn holds the constraints
    if u0 < 0:
        raise DataError(f"{where}: the chat template does not contain the prompt text verbatim")
    enc = tok(chat, add_special_tokens=False, return_offsets_mapping=True)
    seg, owner = [], []
    for a, b in enc["offset_mapping"]:
        hit = next((j for j, (s, e) in enumerate(spans) if a < u0 + e and u0 + s < b), -1)
        owner.append(hit)
        if hit >= 0:
            seg.append(CONSTRAINT)
        elif a < u0 + len(user) and u0 < b:
            seg.append(TASK)
        else:
            seg.append(TEMPLATE)
    if CONSTRAINT not in seg:
        raise SpanNotFound(f"{where}: the constraint spans cover no token")
    if not isinstance(response, str) or not response:
        raise DataError(f"{where}: field 'response' must be a non-empty string")
    resp_ids = tok(response, add_special_tokens=False)["input_ids"]
    n = len(resp_ids)
    return list(enc["input_ids"]) + list(resp_ids), seg + [RESPONSE] * n, n, owner + [-1] * n


@torch.no_grad()
def record_scores(model, input_ids, seg, n_resp, backend=None):
    """(score, mass), each (n_layers, H): normalized and raw constraint mass, mean over the response tokens."""
    device = next(model.parameters()).device
    ids = torch.tensor([input_ids], device=device)  # (1, T)
    segt = torch.tensor([seg], device=device)  # (1, T)
    with collect_attention_mass(model, segt, len(SEGMENTS), last_queries=n_resp, backend=backend) as c:
        model(input_ids=ids)
    mass = torch.stack([c.mass[layer][0] for layer in sorted(c.mass)])[..., CONSTRAINT]  # (n_layers, H, R)
    T = len(input_ids)
    visible = torch.arange(T - n_resp, T, dtype=torch.float32) + 1  # (R,) keys each response token sees
    share = seg.count(CONSTRAINT) / visible  # (R,)
    return (mass / share).mean(-1), mass.mean(-1)


def prepare(tok, records, responses=None, where="data", soft=True):
    """(items, skipped): items are (key, input_ids, seg, n_resp); skipped are (key, reason)."""
    by_prompt = {} if responses is None else {r.get("prompt"): r.get("response") for r in responses}
    items, skipped = [], []
    for i, rec in enumerate(records):
        key, here = rec.get("key", i), f"{where}:record {i + 1}"
        if "response" in rec:
            response = rec["response"]
        elif prompt_text(rec) in by_prompt:
            response = by_prompt[prompt_text(rec)]
        else:
            raise DataError(f"{here}: no field 'response' and no line in the responses file with this prompt")
        try:
            items.append((key, *segment(tok, rec, response, here, soft)))
        except SpanNotFound as e:
            skipped.append((key, str(e)))
    return items, skipped


def constraint_attention_scores(model, tok, records, layers=None, backend=None, soft=True):
    """One float per record (with a `response`): its mean normalized constraint attention over `layers` (default
    all), heads and response tokens; NaN where the constraint text cannot be located. See the module docstring."""
    out = []
    for i, rec in enumerate(records):
        try:
            ids, seg, n = segment(tok, rec, rec.get("response"), f"records[{i}]", soft)
        except SpanNotFound:
            out.append(math.nan)
            continue
        score, _ = record_scores(model, ids, seg, n, backend)  # (n_layers, H)
        out.append(float((score if layers is None else score[list(layers)]).mean()))
    return out


def analyze(model, items, backend, label):
    """Mean score and mass over records, (n_layers, H) each, and one row per record."""
    scores, masses, rows = [], [], []
    progress = Progress(len(items), desc=f"attention {label}", unit="record")
    for key, ids, seg, n in items:
        score, mass = record_scores(model, ids, seg, n, backend)
        scores.append(score)
        masses.append(mass)
        rows.append({"checkpoint": label, "key": key, "tokens": len(ids), "response_tokens": n,
                     "constraint_tokens": seg.count(CONSTRAINT), "score": round(float(score.mean()), 5)})
        progress.update(1)
    progress.close()
    return torch.stack(scores).mean(0), torch.stack(masses).mean(0), rows


# --- the pipeline's attention stage (pipeline/reproduce.py): the same score, the constraint text split by kind

GROUPS = ("all", "seen", "unseen", "hard", "soft")  # every constraint; seen / unseen types; hard / soft


def stage_record(record, response, unseen=None):
    """A held-out record as the stage scores it: the prompt, the policy's `response`, each constraint's character
    span ("constraint_spans", hard ones by their `verifiers.describe` text, then the soft ones, each found verbatim)
    and its labels ("constraint_labels": kind hard / soft, seen = False for a type training never saw). `unseen`:
    per hard constraint, "type" for a held-out type (default: the record's own "unseen" field, as the held-out
    split writes it). Constraints whose text is not in the prompt are left out; `run.py attention --data` reads
    the result as it is and gives the same "all" numbers."""
    from minirlvr.verifiers import describe

    text = prompt_text(record)
    ids, kwargs = record.get("instruction_id_list", []), record.get("kwargs", [])
    unseen = list(unseen if unseen is not None else record.get("unseen") or [None] * len(ids))
    spans, labels = [], []
    found = [(describe(iid, kw), {"kind": "hard", "id": iid, "seen": u != "type"})
             for iid, kw, u in zip(ids, kwargs, unseen)]
    found += [(c, {"kind": "soft", "id": c, "seen": True}) for c in record.get("soft_constraints", [])]
    for desc, label in found:
        start = text.find(desc)
        if start >= 0:
            spans.append([start, start + len(desc)])
            labels.append(label)
    keep = {k: record[k] for k in ("key", "messages", "prompt") if k in record}
    return {**keep, "response": response, "constraint_spans": spans, "constraint_labels": labels}


def group_members(labels):
    """{group: [constraint indices]} of the groups that have at least one constraint."""
    test = {"all": lambda c: True, "seen": lambda c: c["seen"], "unseen": lambda c: not c["seen"],
            "hard": lambda c: c["kind"] == "hard", "soft": lambda c: c["kind"] == "soft"}
    out = {g: [j for j, c in enumerate(labels) if test[g](c)] for g in GROUPS}
    return {g: js for g, js in out.items() if js}


@torch.no_grad()
def group_scores(model, input_ids, seg, n_resp, owner, groups, backend=None):
    """{group: (n_layers, H) score}: record_scores' normalized score with the constraint text restricted to each
    group's constraints (the rest counts as task text). One forward: each constraint is its own segment."""
    device = next(model.parameters()).device
    n_c = max(owner) + 1
    # segments: template 0, task 1, (constraint 2 unused), response 3, constraint j -> 4 + j
    split = [4 + o if o >= 0 else s for s, o in zip(seg, owner)]
    ids = torch.tensor([input_ids], device=device)  # (1, T)
    segt = torch.tensor([split], device=device)  # (1, T)
    with collect_attention_mass(model, segt, 4 + n_c, last_queries=n_resp, backend=backend) as c:
        model(input_ids=ids)
    mass = torch.stack([c.mass[layer][0] for layer in sorted(c.mass)])  # (n_layers, H, R, 4 + n_c)
    T = len(input_ids)
    visible = torch.arange(T - n_resp, T, dtype=torch.float32) + 1  # (R,)
    out = {}
    for g, members in groups.items():
        n_g = sum(split.count(4 + j) for j in members)
        if n_g == 0:
            continue  # the group's text covers no token of its own (a border token went to another constraint)
        m = mass[..., [4 + j for j in members]].sum(-1)  # (n_layers, H, R)
        out[g] = (m / (n_g / visible)).mean(-1)
    return out


def _score_record(model, tok, rec, i, where, backend, per_group, rows, skipped):
    """stage_scores for one record: its group scores appended to per_group and rows, or a reason to skipped."""
    key, here = rec.get("key", i), f"{where}:record {i + 1}"
    if not rec.get("response"):
        skipped.append((key, f"{here}: empty response"))
        return
    try:
        ids, seg, n, owner = segment_spans(tok, rec, [tuple(s) for s in rec["constraint_spans"]], rec["response"],
                                           here)
    except SpanNotFound as e:
        skipped.append((key, str(e)))
        return
    scores = group_scores(model, ids, seg, n, owner, group_members(rec["constraint_labels"]), backend)
    for g, m in scores.items():
        per_group[g].append(m)
    rows.append({"key": key, "response_tokens": n, **{g: round(float(m.mean()), 5) for g, m in scores.items()}})


def stage_scores(model, tok, records, backend=None, where="attention stage"):
    """The attention stage's numbers for one policy on stage_record()s: per group (GROUPS) the number of records
    and the score (mean over records of the mean over layers and heads), per layer; the (layers x heads) matrix of
    "all"; one row per record; the records skipped, with why (no response, constraint text on no token)."""
    per_group, rows, skipped = {g: [] for g in GROUPS}, [], []
    was_training = model.training
    model.eval()  # a policy straight out of training may be in train mode: no dropout in a measurement
    try:
        for i, rec in enumerate(records):
            _score_record(model, tok, rec, i, where, backend, per_group, rows, skipped)
    finally:
        model.train(was_training)
    out = {"records": len(rows), "skipped": skipped, "groups": {}, "per_record": rows}
    for g, ms in per_group.items():
        if ms:
            m = torch.stack(ms).mean(0)  # (n_layers, H)
            out["groups"][g] = {"n": len(ms), "score": float(m.mean()), "layers": m.mean(-1).tolist()}
            if g == "all":
                out["heads"] = m.tolist()
    return out


def load(model_path, adapter, load_4bit, device):
    """The model (+ a LoRA adapter) loaded as the kit's engine loads a policy (engine/model.load_for_inference:
    NF4 with double quantization, bf16 on a GPU, the CPU's 4-bit training path), so that the scores equal the
    pipeline's attention stage on the policy it trained."""
    from minirlvr.engine.model import load_for_inference

    model, _ = load_for_inference(model_path, adapter, load_in_4bit=load_4bit, device=device)
    return model.eval()


def markdown_table(matrix, title, fmt="{:.3f}"):
    n_layers, H = matrix.shape
    lines = [f"### {title}", "", "| layer | " + " | ".join(f"h{h}" for h in range(H)) + " | mean |",
             "|---" * (H + 2) + "|"]
    for layer in range(n_layers):
        cells = [fmt.format(float(x)) for x in matrix[layer]] + [fmt.format(float(matrix[layer].mean()))]
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# The heatmaps' colour scale, in units of the constraint text's share of the keys: symmetric about "no effect" (a
# score of 1, a change of 0) and never narrower than +-MIN_HALF_SPAN, so that a spread of 0.01 around 1 shows pale
# instead of filling the colour map as structure would. 0.05 is about the largest seed sd of a change the miniature
# measured (0.039, soft-only, all constraints; README): differences under it are within what seeds move.
MIN_HALF_SPAN = 0.05


def colour_scale(m, centre):
    """(vmin, vmax, colourbar label) of a heatmap of scores (centre 1) or of changes of the score (centre 0): the
    centre +- the largest distance of a value from it, at least MIN_HALF_SPAN; NaN cells are left out."""
    d = (m - centre).abs()
    d = d[d == d]
    half = max(float(d.max()) if d.numel() else 0.0, MIN_HALF_SPAN)
    what = "score (1 = its share of the keys)" if centre == 1 else "change of the score"
    return centre - half, centre + half, f"{what}\nscale {centre:g} ± {half:.3f} (never under ± {MIN_HALF_SPAN:g})"


def heatmap_figure(panels):
    """panels: [(title, (n_layers, H) matrix, diverging)] -> the Figure, layers down, heads across. A score panel
    (diverging False) is centred at 1, a difference panel at 0, both on colour_scale's limits, said in the
    colourbar's label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    for ax, (title, m, diverging) in zip(axes[0], panels):
        vmin, vmax, label = colour_scale(m, 0.0 if diverging else 1.0)
        im = ax.imshow(m.numpy(), cmap="RdBu_r", vmin=vmin, vmax=vmax, aspect="auto")
        ax.set(title=title, xlabel="head", ylabel="layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.colorbar(im, ax=ax).set_label(label, fontsize=7)
    fig.tight_layout()
    return fig


def heatmap(panels, path):
    """heatmap_figure's Figure as a PNG at path."""
    import matplotlib.pyplot as plt

    fig = heatmap_figure(panels)
    fig.savefig(path, dpi=120)
    plt.close(fig)
