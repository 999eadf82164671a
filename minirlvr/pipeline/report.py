"""What every pipeline report shares: means, "mean ± sd over seeds" cells, markdown table rows, and the PNG of two
series of the engine's metrics.jsonl over GRPO steps, one panel per arm.

The miniature plots `reward` (the training reward, judged where a judge is in the loop) against `reward/true` (the
same formula with the world's truth in place of the judge); a real model plots the reward against the judge's
agreement with the verifiers on canaries. Matplotlib's Agg backend, so no display is needed. This file computes
nothing.
"""

import math
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


def smooth(values, k=5):
    out = []
    for i in range(len(values)):
        window = [v for v in values[max(0, i - k + 1):i + 1] if v is not None and v == v]  # skip NaN / null
        out.append(sum(window) / len(window) if window else float("nan"))
    return out


def reward_curves(histories, path, title="", series=(("reward", "judged reward (training)"),
                                                       ("reward/true", "true satisfaction"))):
    """histories: {variant: [list of metrics rows per seed]} -> one PNG at path: one panel per variant, the first
    series in red, the second in blue dashed (the miniature: judged reward vs the world's truth)."""
    variants = list(histories)
    styles = [dict(color="tab:red"), dict(color="tab:blue", linestyle="--")]
    fig, axes = plt.subplots(1, len(variants), figsize=(3.6 * len(variants), 3.2), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], variants):
        for s, rows in enumerate(histories[name]):
            rows = [r for r in rows if r.get("step", 0) > 0 and "reward" in r]
            steps = [r["step"] for r in rows]
            for (key, label), style in zip(series, styles):
                ax.plot(steps, smooth([r.get(key, float("nan")) for r in rows]), alpha=0.8,
                        label=label if s == 0 else None, **style)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("GRPO step")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean over rollouts")
    axes[0][0].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
