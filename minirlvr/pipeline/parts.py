"""The parts protocol: what `reproduce(parts, ...)` asks of a world (DESIGN.md, "one pipeline, parts passed in").

Two implementations plug into the same pipeline: minirlvr/miniature/parts.py (MiniatureParts: the synthetic world,
its SFT start, its learned judge, the world's truth as the evaluation) and pipeline/hf_parts.py (HFParts: a Hugging
Face chat model, data built from seed tasks or a dataset, the LLM judge and critic, IFEval / IFBench / a held-out
split). A fork that brings its own world writes one more class with these methods; the pipeline does not change.
"""

from typing import Callable, Protocol, runtime_checkable


@runtime_checkable
class Parts(Protocol):
    """Every method the pipeline calls, in the order it calls them. `log(msg)` prints and appends to log.txt."""

    headline: tuple
    """(metric key of evaluate(), words): the held-out metric whose gain the report correlates with the change of
    attention to the constraints."""

    def describe(self) -> dict:
        """The settings that define the run, JSON-able: saved as config.json; a resume must find them unchanged."""

    def setup(self, log: Callable[[str], None]):
        """Get the start policy, the judge and the held-out sets ready; return (model, tokenizer) of the start."""

    def evaluate(self, model, tokenizer) -> dict:
        """Metrics of one policy on the held-out sets: {name: number}; the start's and every run's."""

    def summary(self, metrics: dict) -> str:
        """One log line of `metrics`."""

    def attention_items(self, model, tokenizer) -> list:
        """The attention stage's input for one policy (the start's, then each run's after its evaluation): a few
        held-out records, each with the policy's own greedy response and its constraints' spans and labels, as
        evaluation/attention.stage_record(record, response, unseen) builds them. Must not draw from the global
        random streams in a way that matters (the pipeline isolates them anyway)."""

    def training_sets(self, log) -> tuple:
        """({arm: records}, stats): each arm's training data, refinement included; stats go to the report."""

    def release(self) -> None:
        """Free what only setup/training_sets needed (the start model's copy, a critic) before training."""

    def runs(self) -> list:
        """[(run name, seed, arm)]: what to train, each from the same start with the same budget."""

    def workers(self) -> tuple:
        """(n, make_parts): up to n runs may train at once, each in a fresh process where `make_parts()` (picklable)
        returns these parts with their setup done (from caches: no training); (1, None): one after another here."""

    def train_config(self, name: str, seed: int, run_dir: str, resume: bool):
        """The engine's TrainConfig for one run (model, data size, steps, out_dir=run_dir, resume)."""

    def reward(self, name: str):
        """reward_fn(records, completions) -> (rewards, parts) for a run, or None: the engine builds it from the
        config."""

    def describe_run(self, train_config) -> str:
        """A few words on how a run trains (e.g. "4-bit NF4 base + LoRA r=8"), for the log."""

    def training_metrics(self, steps: list) -> dict:
        """Extra result columns from a run's per-step metrics rows (e.g. the judge's canary recall at the end)."""

    def curves(self, histories: dict, path: str) -> None:
        """Write the PNG of training curves: histories is {run name: [metrics rows of each seed]}."""

    def table(self, start: dict, rows: list, stats: dict) -> str:
        """The report in markdown: the start's metrics, one row per run (mean ± sd over seeds), the data stats."""

    def results(self) -> dict:
        """What results.json keeps about the parts themselves (the judge's audit, the paper's numbers, ...)."""
