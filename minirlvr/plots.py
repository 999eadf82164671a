"""PNG plots of the experiment: judged reward vs true satisfaction over GRPO steps, one panel per variant.

Reads the engine's metrics.jsonl rows (`reward` = the training reward, judged where a judge is in the loop;
`reward/true` = the same formula with the world's truth in place of the judge). Matplotlib's Agg backend,
so no display is needed. This file computes nothing.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def smooth(values, k=5):
    out = []
    for i in range(len(values)):
        window = [v for v in values[max(0, i - k + 1):i + 1] if v == v]  # skip NaN
        out.append(sum(window) / len(window) if window else float("nan"))
    return out


def reward_curves(histories, path, title=""):
    """histories: {variant: [list of metrics rows per seed]} -> one PNG at path."""
    variants = list(histories)
    fig, axes = plt.subplots(1, len(variants), figsize=(3.6 * len(variants), 3.2), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], variants):
        for s, rows in enumerate(histories[name]):
            rows = [r for r in rows if r.get("step", 0) > 0 and "reward" in r]
            steps = [r["step"] for r in rows]
            ax.plot(steps, smooth([r["reward"] for r in rows]), color="tab:red", alpha=0.8,
                    label="judged reward (training)" if s == 0 else None)
            ax.plot(steps, smooth([r.get("reward/true", float("nan")) for r in rows]), color="tab:blue",
                    linestyle="--", alpha=0.8, label="true satisfaction" if s == 0 else None)
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
