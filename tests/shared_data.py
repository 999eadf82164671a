"""The reference data beside the repository (../shared/data) and NLTK pointed at its punkt_tab, for the agreement
tests against the benchmarks' reference scorers: a missing piece skips the calling module with a reason naming it."""

import os
from pathlib import Path

import pytest

# ../shared/data beside the repository; MINIRLVR_SHARED_DATA names another copy (a worktree kept elsewhere)
SHARED = Path(os.environ.get("MINIRLVR_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
NLTK_DATA = SHARED / "nltk_data"


TAGGER = NLTK_DATA / "taggers" / "averaged_perceptron_tagger_eng"


def require(benchmark, *names, who="the reference scorer", tagger=False):
    """The paths of `names` in ../shared/data/<benchmark>, and nltk ready offline (with its perceptron tagger
    model if `tagger`); skips the module otherwise."""
    paths = [SHARED / benchmark / n for n in names]
    if not all(p.exists() for p in paths):
        pytest.skip(f"{benchmark} data not found in {SHARED / benchmark} (the shared data folder beside the "
                    f"repository)", allow_module_level=True)
    if not (NLTK_DATA / "tokenizers" / "punkt_tab").is_dir():
        pytest.skip(f"NLTK punkt_tab not found in {NLTK_DATA}; {who} needs it", allow_module_level=True)
    if tagger and not TAGGER.is_dir():
        pytest.skip(f"NLTK's tagger model not found in {TAGGER}; the reference's words:start_verb needs it",
                    allow_module_level=True)
    os.environ.setdefault("NLTK_DATA", str(NLTK_DATA))
    nltk = pytest.importorskip("nltk", reason=f"{who} needs nltk (pip install .[test])")
    if str(NLTK_DATA) not in nltk.data.path:
        nltk.data.path.insert(0, str(NLTK_DATA))  # nltk was imported before NLTK_DATA was set
    return (*paths, nltk)
