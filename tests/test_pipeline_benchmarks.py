"""`reproduce --preset tiny` with all five of the paper's benchmarks: IFEval and IFBench (verifiers), Multi-IF
(three turns, rules), CFBench and FollowBench (judged by the preset's judge with their own prompts). The report
gets a column each, labelled with its metric, and the 5-benchmark mean."""

import json
import os

from test_eval_benchmarks import CFBENCH, FOLLOWBENCH
from test_multiif import _row, _write
from test_pipeline_tiny import IFEVAL

from minirlvr.commands import reproduce as reproduce_cmd
from minirlvr.pipeline.hf_parts import with_five_average


def test_tiny_pipeline_with_the_five_benchmarks(tmp_path):
    ifeval = tmp_path / "ifeval.jsonl"
    ifeval.write_text("".join(json.dumps(r) + "\n" for r in IFEVAL))
    cfbench = tmp_path / "cfbench.json"
    cfbench.write_text(json.dumps(CFBENCH[:2], ensure_ascii=False), encoding="utf-8")
    followbench = tmp_path / "content_constraints.json"
    followbench.write_text(json.dumps(FOLLOWBENCH[:3]))
    multiif = _write(tmp_path, [_row("a", turns=3)])
    out = str(tmp_path / "run")
    reproduce_cmd.main(["--preset", "tiny", "--out", out, "--steps", "1", "--threads", "1", "--ifeval", str(ifeval),
                        "--ifbench", str(ifeval), "--multiif", str(multiif), "--cfbench", str(cfbench),
                        "--followbench", str(followbench)])
    res = json.load(open(os.path.join(out, "results.json")))
    for row in [res["start"]] + res["runs"]:
        for key in ("multi-if/headline", "multi-if/turn3/overall", "cfbench/PSR", "cfbench/headline",
                    "followbench/HSR/level1", "followbench/headline"):
            assert key in row, key
    table = open(os.path.join(out, "results.md")).read()
    for column in ("ifeval P-loose", "ifbench P-loose", "Multi-IF overall", "CFBench PSR", "FollowBench HSR",
                   "5-benchmark mean"):
        assert column in table, column
    start = with_five_average(res["start"])
    parts = [start[k] for k in ("ifeval/prompt_level_loose", "ifbench/prompt_level_loose", "multi-if/headline",
                                "cfbench/headline", "followbench/headline")]
    assert abs(start["five/average"] - sum(parts) / 5) < 1e-12


def test_the_five_benchmark_mean_needs_all_five():
    row = {"ifeval/prompt_level_loose": 0.5, "ifbench/prompt_level_loose": 0.25, "multi-if/headline": 0.5,
           "cfbench/headline": 1.0}
    assert "five/average" not in with_five_average(row)
    assert with_five_average({**row, "followbench/headline": 0.0})["five/average"] == 0.45


def test_judge_recall_is_shown_over_readable_answers_beside_the_unreadable_count(tmp_path):
    """An unreadable answer scores 'not satisfied', so it counts as a caught violation in the all-answers recall:
    the table shows recall over readable answers first, and how many answers were unreadable out of how many."""
    from minirlvr.pipeline.hf_parts import HFParts
    from minirlvr.pipeline.presets import get

    parts = HFParts(get("tiny"), str(tmp_path))
    base = {"heldout/prompt_level_strict": 0.0, "judge/recall_violated": 1.0, "judge/recall_violated_readable": float("nan"),
            "judge/unparseable": 15, "judge/questions": 15, "judge/gap": 0.0}
    table = parts.table(base, [], {})
    head, start = [line for line in table.splitlines() if line.startswith("| arm") or line.startswith("| start")]
    cells = dict(zip(head.split(" | "), start.split(" | ")))
    assert cells["judge recall (violated), readable answers %"] == "n/a"
    assert cells["judge unreadable answers"] == "15" and cells["judge questions"] == "15"
    assert head.index("readable answers") < head.index("all answers")
