"""Reports say what their numbers mean (issue #25): the reward curves state their smoothing and draw each step
beside it; the attention heatmaps use a colour scale centred at "no effect" that is never narrower than the noise,
and say it; the real presets' table prints pass rates in percent; a smoke-test preset's report says its numbers
mean nothing; a refined arm that fell back to other data says so in its row."""

from dataclasses import replace

import matplotlib.pyplot as plt
import pytest
import torch

from minirlvr.evaluation import attention as A
from minirlvr.pipeline import report
from minirlvr.pipeline.hf_parts import HFParts, refined_or_fallback
from minirlvr.pipeline.presets import PRESETS, get

RAW = [0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.4, float("nan"), 0.5]


def test_reward_curves_state_their_trailing_mean_and_draw_each_step_faint():
    rows = [{"step": i + 1, "reward": v, "reward/true": 1 - v} for i, v in enumerate(RAW)]
    fig = report.reward_curves_figure({"hard-only": [rows], "mixed": [rows]}, "t")
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "judged reward (training), trailing mean of 5 steps" in legend
    assert "true satisfaction, trailing mean of 5 steps" in legend and "faint: each step's value" in legend

    def drawn(values, faint):
        return any(list(line.get_xdata()) == list(range(1, len(RAW) + 1)) and (line.get_alpha() <= 0.3) == faint
                   and all(a == b or a != a and b != b for a, b in zip(line.get_ydata(), values))
                   for line in ax.lines)

    assert drawn(RAW, faint=True) and drawn(report.smooth(RAW), faint=False)
    assert report.smooth(RAW)[4] == pytest.approx(sum(RAW[:5]) / 5)  # the window the legend states
    plt.close(fig)


def test_colour_scale_is_centred_at_no_effect_and_never_narrower_than_the_noise():
    # the heatmap that made noise look like structure: scores 0.991..1.004 filled the whole colour map
    vmin, vmax, label = A.colour_scale(torch.tensor([[0.991, 1.004], [1.0, float("nan")]]), 1.0)
    assert (vmin, vmax) == pytest.approx((1 - A.MIN_HALF_SPAN, 1 + A.MIN_HALF_SPAN))
    assert "scale 1 ± 0.050" in label and "1 = its share of the keys" in label
    vmin, vmax, _ = A.colour_scale(torch.tensor([[0.5, 1.2]]), 1.0)  # wider than the minimum: every value fits
    assert (vmin, vmax) == pytest.approx((0.5, 1.5))
    vmin, vmax, label = A.colour_scale(torch.tensor([[0.2, -0.01]]), 0.0)
    assert (vmin, vmax) == pytest.approx((-0.2, 0.2)) and label.startswith("change of the score")


def test_the_heatmaps_use_that_scale_and_say_it_in_the_colourbar():
    score = torch.tensor([[0.991, 1.004], [0.998, 1.001]])  # (n_layers, H)
    fig = A.heatmap_figure([("start", score, False), ("second - first", score - 1.0, True)])
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert [im.get_clim() for im in images] == [pytest.approx((0.95, 1.05)), pytest.approx((-0.05, 0.05))]
    labels = [ax.get_ylabel() for ax in fig.axes if not ax.images and ax.get_ylabel() not in ("", "layer")]
    assert labels[0].startswith("score (1 = ") and "± 0.050" in labels[0] and labels[1].startswith("change")
    plt.close(fig)
    # the pipeline's figure of layers x arms, changes from the start
    fig = report.attention_figure_of({"hard-only": ([0.004, -0.002], [(0, 1, 0.01), (1, 0, -0.003)])})
    assert fig.axes[0].images[0].get_clim() == pytest.approx((-0.05, 0.05))
    assert fig.axes[1].get_ylabel().startswith("change of the score\nscale 0 ± 0.050")
    plt.close(fig)


def table_cells(table, first):
    head = next(line for line in table.splitlines() if line.startswith("| arm"))
    row = next(line for line in table.splitlines() if line.startswith(f"| {first}"))
    return dict(zip([c.strip() for c in head.strip("|").split("|")], [c.strip() for c in row.strip("|").split("|")]))


BASE = {"heldout/prompt_level_strict": 0.25, "heldout/instruction_level_strict": 0.5, "heldout/type": 1 / 3,
        "heldout/kwargs": 0.0, "judge/gap": -0.125, "judge/recall_violated": 0.75,
        "judge/recall_violated_readable": 0.5, "judge/unparseable": 2, "judge/questions": 16, "wall_s": 12.3}


def test_the_real_presets_table_prints_pass_rates_in_percent_like_eval(tmp_path):
    table = HFParts(get("tiny"), str(tmp_path)).table(BASE, [], {})
    cells = table_cells(table, "start")
    assert cells["held-out P-strict %"] == "25.0" and cells["held-out I-strict %"] == "50.0"
    assert cells["unseen type %"] == "33.3" and cells["unseen kwargs %"] == "0.0"
    assert cells["judged−verified, points"] == "-12.5"
    assert cells["judge recall (violated), readable answers %"] == "50.0"
    assert cells["judge recall (violated), all answers %"] == "75.0"
    assert cells["judge questions"] == "16" and cells["wall s"] == "12"
    assert report.UNITS in table
    rows = [dict(BASE, variant="hard-only", seed=s, **{"heldout/prompt_level_strict": v}) for s, v in ((0, .2), (1, .3))]
    cells = table_cells(HFParts(get("tiny"), str(tmp_path)).table(BASE, rows, {}), "hard-only")
    assert cells["held-out P-strict %"] == "25.0 ± 5.0"


def test_a_smoke_preset_says_its_numbers_mean_nothing(tmp_path):
    assert set(report.SMOKE_PRESETS) <= set(PRESETS)  # a renamed preset cannot silently lose its label
    assert report.smoke_header("miniature") == [] and report.smoke_header("qwen2.5-7b") == []
    for name in report.SMOKE_PRESETS:
        assert "Smoke test" in "".join(report.smoke_header(name)) and "mean nothing" in "".join(report.smoke_header(name))
    table = HFParts(get("tiny"), str(tmp_path)).table(BASE, [], {})
    title, _, note = table.splitlines()[:3]
    assert title.startswith("### minirlvr pipeline, preset tiny") and note.startswith("**Smoke test (preset tiny)")
    other = HFParts(replace(get("tiny"), name="not-a-smoke-test"), str(tmp_path)).table(BASE, [], {})
    assert "Smoke test" not in other


PILOT_EMPTY = {"stages": [{"stage": "critic", "in": 24, "out": 20}, {"stage": "one_soft", "in": 20, "out": 20},
                          {"stage": "pilot", "in": 20, "out": 0}], "kept": 0, "dropped": [{"key": 1}]}


def test_a_refined_arm_that_fell_back_to_the_mixed_data_says_so_in_its_row(tmp_path):
    mixed = [{"key": i} for i in range(24)]
    records, stats = refined_or_fallback([], PILOT_EMPTY, mixed)
    assert records == mixed and stats["kept"] == 0 and stats["trained_on"] == 24
    assert stats["fallback"] == "refined (fallback: pilot kept 0 of 20, trained on the mixed data's 24)"
    rows = [dict(BASE, variant=v, seed=0) for v in ("mixed", "refined")]
    table = HFParts(get("tiny"), str(tmp_path)).table(BASE, rows, stats)
    assert f"| {stats['fallback']} | 25.0 |" in table and "| refined |" not in table
    assert "trains on the mixed data's 24 prompts" in table and "trains on 24 prompts" not in table
    # refinement that kept prompts: the arm is plain "refined", trained on what was kept
    kept = mixed[:5]
    records, stats = refined_or_fallback(kept, dict(PILOT_EMPTY, kept=5), mixed)
    assert records == kept and "fallback" not in stats and stats["kept"] == 5
    table = HFParts(get("tiny"), str(tmp_path)).table(BASE, rows, stats)
    assert "| refined | 25.0 |" in table and "the refined arm trains on 5 prompts" in table
    # the miniature's case (its fallback is the critic's output): the helper its table can use
    stages = [{"stage": "critic", "in": 9, "out": 7}, {"stage": "pilot", "in": 7, "out": 0}]
    assert report.fallback_label("refined", stages, 7, "the critic's") == \
        "refined (fallback: pilot kept 0 of 7, trained on the critic's 7)"
