"""What every pipeline report shares: means, "mean ± sd over seeds" cells (pass rates in percent: one unit per kind
of number, see UNITS), markdown table rows, the smoke-test and fallback labels, the PNG of two series of the
engine's metrics.jsonl over GRPO steps (each step faint, a stated trailing mean bold), one panel per arm, and the
attention stage's section (its table, its figure of layers x arms on a fixed colour scale, the paper's claim beside
ours, the noise and the correlation with held-out gains).

The miniature plots `reward` (the training reward, judged where a judge is in the loop) against `reward/true` (the
same formula with the world's truth in place of the judge); a real model plots the reward against the judge's
agreement with the verifiers on canaries. Matplotlib's Agg backend, so no display is needed. This file measures
nothing: the attention scores come from evaluation/attention.py; here they are only differenced, averaged and
correlated.
"""

import math
import os
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def mean(xs):
    """The mean; NaN for no values."""
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


def nanmean(xs):
    """The mean of the values that are not NaN; NaN when none is."""
    return mean(x for x in xs if x == x)


def mean_sd(values, digits=3):
    """One table cell: "m" for one value, "m ± sd" (population sd, over seeds) for several, "n/a" for none;
    values that are not numbers, or NaN, are left out."""
    vals = [v for v in values if isinstance(v, (int, float)) and v == v]
    if not vals:
        return "n/a"
    m = mean(vals)
    if len(vals) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {math.sqrt(mean((v - m) ** 2 for v in vals)):.{digits}f}"


def by_variant(rows):
    """{variant: [its rows, one per seed]} in the order the variants first appear."""
    out = defaultdict(list)
    for r in rows:
        out[r["variant"]].append(r)
    return out


def table_head(columns, first="arm", extra=()):
    """The header and rule lines of a markdown table whose first column is `first`."""
    names = [first, *columns, *extra]
    return ["| " + " | ".join(names) + " |", "|---" * len(names) + "|"]


# One unit per kind of number, in every table the kit prints (README, "Units"): a pass rate, and a recall or precision
# (also a share of constraints), in percent with one decimal in the pipeline's tables (verify and eval print two, as
# the reference scorers do), its header saying "%"; a difference of two of them in percentage points ("points");
# counts as integers; the attention score as a ratio (1 = the constraint text's share of the keys), three decimals.
UNITS = ("Pass rates, recalls and precisions in percent; differences of them in percentage points (points); "
         "attention scores as ratios (1 = the constraint text's share of the keys).")


def percent_cell(values):
    """One table cell of a pass rate (or recall, precision) given as fractions: "m ± sd" of 100 x the values, one
    decimal (mean_sd's rules: one value alone, over seeds; NaN and non-numbers left out; "n/a" for none). A
    difference of two rates (e.g. judged - verified) uses it too: its column says points."""
    return mean_sd([100 * v for v in values if isinstance(v, (int, float))], 1)


# Presets that exist to show that every stage runs (tests, a first try), at a size where nothing is learned.
SMOKE_PRESETS = ("tiny", "miniature-smoke")


def smoke_header(preset):
    """The lines a report puts under its title when its preset is a smoke test, so its numbers are never read as a
    result; [] for any other preset."""
    if preset not in SMOKE_PRESETS:
        return []
    return ["", f"**Smoke test (preset {preset}): these numbers only show that every stage ran. They mean nothing "
                "about the method: the model and the training budget are far too small to learn.** For results run "
                "the preset miniature (`python run.py`) or a real model."]


def fallback_label(arm, stages, trained_on, whose):
    """The row name of an arm whose refinement kept no prompt and which trained on other data instead, e.g.
    "refined (fallback: pilot kept 0 of 24, trained on the mixed data's 24)". stages: the refinement's
    [{"stage", "in", "out"}] in order (the first that emptied it is named); whose: "the mixed data's",
    "the critic's"."""
    empty = next((s for s in stages if s["out"] == 0), {"stage": "refinement", "in": "?"})
    return f"{arm} (fallback: {empty['stage']} kept 0 of {empty['in']}, trained on {whose} {trained_on})"


SMOOTH_STEPS = 5  # the curves' trailing mean: GRPO's per-step mean reward over B x G rollouts is noisy


def smooth(values, k=SMOOTH_STEPS):
    """The trailing mean of the last k values at each step (fewer at the start), NaN values left out."""
    out = []
    for i in range(len(values)):
        window = [v for v in values[max(0, i - k + 1):i + 1] if v == v]  # skip NaN
        out.append(sum(window) / len(window) if window else float("nan"))
    return out


MINIATURE_SERIES = (("reward", "judged reward (training)"), ("reward/true", "true satisfaction"))


def reward_curves_figure(histories, title="", series=MINIATURE_SERIES):
    """histories: {variant: [list of metrics rows per seed]} -> the Figure: one panel per variant, the first series
    in red, the second in blue dashed (the miniature: judged reward vs the world's truth); each step's value drawn
    faint, its trailing mean of SMOOTH_STEPS steps (the legend says so) drawn over it."""
    variants = list(histories)
    styles = [dict(color="tab:red"), dict(color="tab:blue", linestyle="--")]
    fig, axes = plt.subplots(1, len(variants), figsize=(3.6 * len(variants), 3.2), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], variants):
        for s, rows in enumerate(histories[name]):
            rows = [r for r in rows if r.get("step", 0) > 0 and "reward" in r]
            steps = [r["step"] for r in rows]
            for (key, label), style in zip(series, styles):
                raw = [r.get(key, float("nan")) for r in rows]
                ax.plot(steps, raw, alpha=0.25, linewidth=0.8, **style)
                ax.plot(steps, smooth(raw), alpha=0.9, label=(f"{label}, trailing mean of {SMOOTH_STEPS} steps"
                                                              if s == 0 else None), **style)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("GRPO step")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].plot([], [], color="gray", alpha=0.25, linewidth=0.8, label="faint: each step's value")
    axes[0][0].set_ylabel("mean over rollouts")
    axes[0][0].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def reward_curves(histories, path, title="", series=MINIATURE_SERIES):
    """reward_curves_figure's Figure as a PNG at path."""
    fig = reward_curves_figure(histories, title, series)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- the attention stage's section (pipeline/reproduce.py's attention_stage; numbers: evaluation/attention.py)

PAPER_ATTENTION = ("the paper (arXiv 2601.04954, abstract): \"analysis of the attention mechanism reveals that "
                   "high-precision rewards develop a transferable meta-skill for IF\" (Qwen2.5-7B-Instruct on "
                   "VerInstruct; its own attention measure, not this one)")
OUR_READING = ("our reading as a test: hard-only GRPO (the high-precision reward) raises response tokens' attention "
               "to the constraint text, on constraint types training never saw too (transfer), and more than the "
               "lower-precision arms (soft-only, mixed)")
ATT_ROWS = [("score, all constraints", "all", False), ("change, all constraints", "all", True),
            ("change, seen types", "seen", True), ("change, unseen types", "unseen", True),
            ("change, hard", "hard", True), ("change, soft", "soft", True)]


def att_score(att, group):
    """A policy's score on one group, NaN where the group had no record (or the run has no attention.json)."""
    g = (att or {}).get("groups", {}).get(group)
    return g["score"] if g else float("nan")


def att_change(start, att, group):
    """A policy's change of the score on one group from the start's, over the prompts both could score (matched
    by key: a policy that answers a prompt with nothing has no score there); NaN where none is shared."""
    before = {r["key"]: r[group] for r in start.get("per_record", []) if group in r}
    d = [r[group] - before[r["key"]] for r in (att or {}).get("per_record", []) if group in r and r["key"] in before]
    return mean(d) if d else float("nan")


def pearson(xs, ys):
    """(r, n) over the pairs where both are numbers; r is NaN for n < 3 or a constant series."""
    pairs = [(x, y) for x, y in zip(xs, ys) if x == x and y == y]
    n = len(pairs)
    if n < 3:
        return float("nan"), n
    mx, my = mean(p[0] for p in pairs), mean(p[1] for p in pairs)
    sxy = sum((x - mx) * (y - my) for x, y in pairs)
    sx = math.sqrt(sum((x - mx) ** 2 for x, _ in pairs))
    sy = math.sqrt(sum((y - my) ** 2 for _, y in pairs))
    return (sxy / (sx * sy) if sx > 0 and sy > 0 else float("nan")), n


def paired_se(start, att, group="all"):
    """Standard error over prompts of the mean per-record change of a group's score (same prompts, matched by key):
    the prompt sampling noise of one run's change. NaN with fewer than 2 shared prompts."""
    before = {r["key"]: r[group] for r in start.get("per_record", []) if group in r}
    d = [r[group] - before[r["key"]] for r in (att or {}).get("per_record", [])
         if r.get("key") in before and group in r]
    if len(d) < 2:
        return float("nan")
    m = mean(d)
    return math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1) / len(d))


def noise_of(changes, ses):
    """(noise, seed sd, prompt SE) of one quantity: noise is the larger of the seed sd of its change and twice the
    mean prompt SE of one run's change (0 where neither is measured)."""
    vals = [v for v in changes if v == v]
    sd = math.sqrt(mean((v - mean(vals)) ** 2 for v in vals)) if len(vals) > 1 else float("nan")
    se = nanmean(ses)
    return max(x for x in (2 * se, sd, 0.0) if x == x), sd, se


def layer_changes(start, runs):
    """{variant: (per-layer change of the "all" score, mean over seeds; (layer, head, change) of the head with the
    largest |change| in each layer)} for the runs that have an attention.json."""
    import torch

    s = torch.tensor(start["heads"])  # (n_layers, H)
    out = {}
    for name, rs in by_variant(runs).items():
        ds = [torch.tensor(r["att"]["heads"]) - s for r in rs if r["att"] and "heads" in r["att"]]
        if not ds:
            continue
        d = torch.stack(ds).mean(0)  # (n_layers, H)
        top = [(layer, int(d[layer].abs().argmax()), float(d[layer, d[layer].abs().argmax()]))
               for layer in range(d.shape[0])]
        out[name] = (d.mean(-1).tolist(), top)
    return out


def attention_figure_of(changes):
    """The Figure: layers (down) x arms (across), the change of the layer's mean score from the start, on a colour
    scale centred at 0 that the colourbar states (evaluation/attention.colour_scale: never narrower than a change
    the seeds move); each cell names its largest-change head, and the largest of each arm is boxed."""
    import torch

    from minirlvr.evaluation.attention import colour_scale

    names = list(changes)
    m = torch.tensor([changes[n][0] for n in names]).T  # (n_layers, arms)
    vmin, vmax, label = colour_scale(m, 0.0)
    fig, ax = plt.subplots(figsize=(2.0 + 1.5 * len(names), max(2.8, 1.2 + 0.45 * m.shape[0])))
    im = ax.imshow(m.numpy(), cmap="RdBu_r", vmin=vmin, vmax=vmax, aspect="auto")
    for a, n in enumerate(names):
        top = changes[n][1]
        best = max(range(len(top)), key=lambda i: abs(top[i][2]))
        for layer, head, d in top:
            ax.text(a, layer, f"{m[layer, a]:+.2f}\nh{head} {d:+.2f}", ha="center", va="center", fontsize=6,
                    fontweight="bold" if layer == best else "normal")
        ax.add_patch(plt.Rectangle((a - 0.5, best - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.5))
    ax.set_xticks(range(len(names)), names, fontsize=7, rotation=20)
    ax.set_yticks(range(m.shape[0]))
    ax.set(ylabel="layer", title="attention to constraints: change from the start\n(layer mean; per cell the "
                                 "largest-change head; boxed: the arm's largest)")
    ax.title.set_fontsize(8)
    fig.colorbar(im, ax=ax).set_label(label, fontsize=7)
    fig.tight_layout()
    return fig


def attention_figure(changes, path):
    """attention_figure_of's Figure as a PNG at path."""
    fig = attention_figure_of(changes)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def attention_section(start, base, runs, headline, png):
    """The report's attention section, markdown lines. start: the start's attention.json; base: its metrics;
    runs: [{"variant", "seed", "att" (attention.json or None), "row" (result row)}]; headline: (metric key,
    words) the correlation uses (held-out gain = run - start); png: where the figure goes."""
    if not start or "all" not in start.get("groups", {}):
        return ["", "Attention stage: no score for the start policy (no record with locatable constraint text)."]
    by = by_variant(runs)
    names = list(by)
    lines = ["", "#### Attention to the constraint text (the paper's attention analysis)", "",
             f"Per policy: {start['records']} held-out prompts with its own greedy response; score = the response "
             "tokens' attention mass on the constraint text / that text's share of the keys they see (1 = its "
             "share), mean over tokens, layers, heads, prompts; split by the constraint's type (seen / unseen in "
             "training) and kind (hard / soft). Change = run - start over the prompts both scored (an empty "
             "response has no score). Mean ± sd over seeds.",
             "", *table_head(["start", *names], first="")]
    for label, g, change in ATT_ROWS:
        cells = ["" if change else f"{att_score(start, g):.3f}"]
        for n in names:
            vals = [att_change(start, r["att"], g) if change else att_score(r["att"], g) for r in by[n]]
            cells.append(mean_sd(vals))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(f"| prompts scored (empty responses skipped) | {start['records']} | "
                 + " | ".join(mean_sd([(r["att"] or {}).get("records") for r in by[n]], 0) for n in names) + " |")
    counts = ", ".join(f"{g} {v['n']}" for g, v in start["groups"].items())
    changes = layer_changes(start, runs)
    top = []
    for n, (_, heads) in changes.items():
        best = sorted(heads, key=lambda t: -abs(t[2]))[:3]
        top.append(f"{n}: " + ", ".join(f"L{layer}.h{h} {d:+.3f}" for layer, h, d in best))
    if changes:
        attention_figure(changes, png)
        lines += ["", f"Prompts per group at the start: {counts}. Largest head changes (mean over seeds, over the "
                      f"prompts each policy scored): {'; '.join(top)}. Figure: {os.path.basename(png)}."]

    # noise: seeds (sd of the change) and prompts (paired SE of one run's change), for each quantity the verdict reads
    hard = by.get("hard-only", [])
    d_all = [att_change(start, r["att"], "all") for r in hard]
    d_uns = [att_change(start, r["att"], "unseen") for r in hard]
    n_all, sd_all, se_all = noise_of(d_all, [paired_se(start, r["att"]) for r in runs])
    n_uns, sd_uns, se_uns = noise_of(d_uns, [paired_se(start, r["att"], "unseen") for r in hard])
    lines += ["", f"**The paper's claim**, labelled as the paper's: {PAPER_ATTENTION}; {OUR_READING}."]
    if hard and nanmean(d_all) == nanmean(d_all):
        others = {n: nanmean(att_change(start, r["att"], "all") for r in by[n])
                  for n in ("soft-only", "mixed") if n in by}
        m_all, m_uns = nanmean(d_all), nanmean(d_uns)
        up, transfer = m_all > n_all, m_uns > n_uns
        beats = bool(others) and all(m_all - v > n_all for v in others.values())
        verdict = ("agrees with" if up and transfer and beats else
                   "disagrees with" if m_all < -n_all or m_uns < -n_uns else "is inconclusive about")

        def noise_words(noise, sd, se):
            return (f"±{noise:.3f} (seed sd " + (f"{sd:.3f}" if sd == sd else "n/a: one seed")
                    + ", prompt SE " + (f"{se:.3f}" if se == se else "n/a") + ")")

        lines.append(
            f"Ours ({len(hard)} seed{'s' if len(hard) > 1 else ''}, {start['records']} prompts, "
            f"{start['groups'].get('unseen', {}).get('n', 0)} with an unseen type): hard-only changes the score by "
            f"{m_all:+.3f} (all), {m_uns:+.3f} (unseen types)"
            + ("".join(f", {n} {v:+.3f}" for n, v in others.items()) + " (all)" if others else "")
            + f". Noise (the larger of the seed sd and twice the prompts' SE of one run's change): all "
            f"{noise_words(n_all, sd_all, se_all)}, unseen types {noise_words(n_uns, sd_uns, se_uns)}. Beyond the "
            f"noise: raised {'yes' if up else 'no'}, on unseen types {'yes' if transfer else 'no'}, more than the "
            f"lower-precision arms {'yes' if beats else 'no'}: this run {verdict} the paper's claim"
            + (" (at this size and with this few prompts the noise decides)." if verdict.startswith("is") else "."))
    key, words = headline
    xs = [att_change(start, r["att"], "all") for r in runs]
    ys = [(r["row"].get(key, float("nan")) - base.get(key, float("nan"))) for r in runs]
    r, n = pearson(xs, ys)
    lines.append(f"Across arms and seeds, attention change vs held-out gain ({words}, run - start): Pearson r = "
                 + (f"{r:+.2f}" if r == r else "n/a") + f", n = {n} runs"
                 + (" (too few runs for a correlation)." if n < 3 else
                    " (one of the two does not vary across runs)." if r != r else
                    " (small n: read it as a direction, not a finding)." if n < 10 else "."))
    return lines
