"""build_data.py / `python run.py data build`: conflict-free hard constraints with valid kwargs, three splits on the
same seed tasks, a held-out split disjoint from training in tasks, ids and kwargs values, deterministic files,
clear errors for bad seed files and nothing written then."""

import itertools
import json
import os

import pytest

from minirlvr import verifiers

from minirlvr.datasets import build as build_data

from minirlvr.commands import data as data_cli

from minirlvr.refine import filters as refine
from minirlvr.data import DataError, prompt_text, read_records
from minirlvr.datasets.soft_catalogue import KINDS, SOFT_CATALOGUE


@pytest.fixture(scope="module")
def built():
    return build_data.build(n=400, seed=3)


def test_soft_catalogue_has_40_texts_of_every_kind():
    assert len(SOFT_CATALOGUE) >= 40 and len({t for _, t in SOFT_CATALOGUE}) == len(SOFT_CATALOGUE)
    assert {k for k, _ in SOFT_CATALOGUE} == set(KINDS)
    assert all(t.endswith(".") and "\n" not in t for _, t in SOFT_CATALOGUE)


def test_shipped_seed_tasks_are_usable():
    tasks = build_data.read_seed_tasks(build_data.default_seeds_path())
    assert len(tasks) >= 300 and len({t for _, t, _ in tasks}) == len(tasks)


def test_never_a_conflicting_pair_and_every_kwargs_validates():
    for seed in range(12):
        files, _ = build_data.build(n=60, seed=seed, heldout_n=30)
        for name, recs in files.items():
            for r in recs:
                ids = r["instruction_id_list"]
                assert len(set(ids)) == len(ids)
                for a, b in itertools.combinations(ids, 2):
                    assert b not in verifiers.conflicts(a), (name, r["key"], a, b)
                required, forbidden = set(), set()
                for iid, kw in zip(ids, r["kwargs"]):
                    assert verifiers.validate_kwargs(iid, kw) == kw
                    forbidden |= set(kw.get("forbidden_words", []))
                    if kw.get("relation") != "less than":
                        required |= {w for f in ("keywords", "keyword", "first_word", "last_word", "keys")
                                     for w in ([kw[f]] if isinstance(kw.get(f), str) else kw.get(f, []))}
                    assert verifiers.describe(iid, kw) in prompt_text(r) or iid == build_data.REPEAT
                assert not required & forbidden, (name, r["key"])  # a contradiction the conflict table misses


def test_three_splits_share_tasks_and_constraints(built):
    files, _ = built
    tasks = {f"seed_tasks.jsonl:{line}": text for line, text, _ in build_data.read_seed_tasks(build_data.default_seeds_path())}
    hard, soft, mixed = files["hard_only"], files["soft_only"], files["mixed"]
    assert len(hard) == len(soft) == len(mixed) == 400
    for h, s, m in zip(hard, soft, mixed):
        assert h["key"] == s["key"] == m["key"] and h["source"] == s["source"] == m["source"]
        assert 1 <= len(h["instruction_id_list"]) <= 3  # build's default max_hard
        assert h["soft_constraints"] == []  # hard-only carries no judged constraint
        assert s["instruction_id_list"] == [] and 1 <= len(s["soft_constraints"]) <= 2
        assert m["instruction_id_list"] == h["instruction_id_list"] and m["soft_constraints"] == s["soft_constraints"]
        kinds = [k for t in s["soft_constraints"] for k, text in SOFT_CATALOGUE if text == t]
        assert len(set(kinds)) == len(kinds)  # at most one soft constraint per kind
        assert all(r["prompt"].startswith(tasks[h["source"]]) for r in (h, s, m))


def test_one_soft_can_cut_built_soft_constraints(built):
    import random

    for m in built[0]["mixed"][:100]:
        out = refine.one_soft(m, random.Random(0))
        assert len(out["soft_constraints"]) == 1
        for t in m["soft_constraints"]:
            assert (t in out["prompt"]) == (t in out["soft_constraints"])


def test_heldout_split_is_disjoint_from_training(built):
    files, manifest = built
    train = files["hard_only"] + files["mixed"]
    held_ids, held_values = set(manifest["heldout_ids"]), manifest["heldout_kwargs"]
    assert not set(manifest["seed_lines"]["train"]) & set(manifest["seed_lines"]["heldout"])
    train_src = {r["source"] for r in train}
    for r in files["heldout"]:
        assert r["source"] not in train_src
        assert r["soft_constraints"] == [] and len(r["unseen"]) == len(r["instruction_id_list"])
    for r in train:  # no held-out type, no held-out kwargs value in training
        assert not set(r["instruction_id_list"]) & held_ids
        assert not any(build_data.is_heldout(i, kw, held_values) for i, kw in zip(r["instruction_id_list"], r["kwargs"]))
    groups = {"seen": 0, "type": 0, "kwargs": 0}
    for r in files["heldout"]:
        marks = [(i, kw, u) for i, kw, u in zip(r["instruction_id_list"], r["kwargs"], r["unseen"])]
        for i, kw, u in marks:
            assert (u == "type") == (i in held_ids)
            assert (u == "kwargs") == build_data.is_heldout(i, kw, held_values)
        groups[next((u for _, _, u in marks if u), "seen")] += 1
    assert all(n > 0 for n in groups.values()) and groups == manifest["splits"]["heldout"]["groups"]
    assert sum(len(v) for f in held_values.values() for v in f.values()) > 20  # values of many ids held out


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        data_cli.main(["build", "--out", str(tmp_path / name), "--n", "50", "--seed", str(seed)])
    names = sorted(os.listdir(tmp_path / "a"))
    assert names == ["hard_only.jsonl", "heldout.jsonl", "manifest.json", "mixed.jsonl", "soft_only.jsonl"]
    for n in names:
        assert (tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes()
    assert (tmp_path / "a" / "mixed.jsonl").read_bytes() != (tmp_path / "c" / "mixed.jsonl").read_bytes()
    assert len(read_records(tmp_path / "a" / "mixed.jsonl")) == 50
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["seed"] == 5 and manifest["splits"]["hard_only"]["records"] == 50


def test_hard_ids_list_is_configurable_and_chat_seeds_keep_their_messages(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"messages": [{"role": "system", "content": "Be brief."},
                                                      {"role": "user", "content": f"Tell me about topic {i}."}]}) + "\n"
                             for i in range(10)))
    files, manifest = build_data.build(str(seeds), n=20, hard_ids=["punctuation:no_comma", "startend:quotation",
                                                                   "keywords:existence"], heldout_ids=["startend:quotation"])
    assert manifest["hard_ids"] == ["punctuation:no_comma", "keywords:existence"]
    for r in files["hard_only"]:
        assert set(r["instruction_id_list"]) <= {"punctuation:no_comma", "keywords:existence"}
        assert r["messages"][0] == {"role": "system", "content": "Be brief."} and "prompt" not in r
    with pytest.raises(DataError, match="unknown instruction ids"):
        build_data.build(str(seeds), hard_ids=["no:such_id"])


@pytest.mark.parametrize("text,match", [
    ("", "no usable seed task"),
    ("\n\n", "no usable seed task"),
    ('{"prompt": "Write a poem."}\n{"task": "no prompt here"}\n', r"seeds.jsonl:2: record has neither 'prompt'"),
    ('{"prompt": "Write a poem."}\n{"prompt": 3}\n', r"seeds.jsonl:2: field 'prompt' must be a string"),
    ('{"prompt": "Write a poem."}\n{"prompt": "   "}\n', r"seeds.jsonl:2: field 'prompt' is empty"),
    ('{"prompt": "Write a poem."}\n{not json\n', r"seeds.jsonl:2: not valid JSON"),
])
def test_bad_seed_file_is_a_clear_error_and_writes_nothing(tmp_path, text, match):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(text)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        data_cli.main(["build", "--seeds", str(seeds), "--out", str(out)])
    assert "data build: error" in str(e.value)
    import re
    assert re.search(match, str(e.value)), str(e.value)
    assert not out.exists()
