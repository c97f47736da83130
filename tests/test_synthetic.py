"""Tests for dpbert.synthetic: determinism, GLUE shapes, balance, vocab, easy vs hard."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from dpbert.data import Example
from dpbert.synthetic import SYNTHETIC_VOCAB, make_synthetic
from dpbert.tasks import TASKS

REPO = Path(__file__).resolve().parents[1]
ALL = list(TASKS)


@pytest.fixture(scope="module")
def data() -> dict[str, dict[str, list[Example]]]:
    return {t: make_synthetic(t, seed=0, n_train=600, n_dev=200, with_test=True) for t in ALL}


def test_deterministic_across_calls_and_seed_sensitive() -> None:
    for t in ALL:
        a = make_synthetic(t, 3, 50, 20)
        assert a == make_synthetic(t, 3, 50, 20)
        assert a != make_synthetic(t, 4, 50, 20)
        # dev does not depend on n_train, and is not a copy of train
        assert make_synthetic(t, 3, 10, 20)["dev" if t != "MNLI" else "dev_matched"] == \
            a["dev" if t != "MNLI" else "dev_matched"]


def test_deterministic_across_python_processes() -> None:
    code = ("from dpbert.synthetic import make_synthetic as m; import hashlib;"
            "print(hashlib.sha256(repr(m('MNLI', 7, 30, 10)).encode()).hexdigest())")
    outs = {subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                           env={"PYTHONPATH": str(REPO), "PYTHONHASHSEED": str(h)}).stdout for h in (1, 2)}
    assert len(outs) == 1 and len(outs.pop().strip()) == 64


@pytest.mark.parametrize("task", ALL)
def test_shapes_splits_and_labels(data: dict, task: str) -> None:
    spec = TASKS[task]
    d = data[task]
    assert set(d) == {"train", *spec.dev_splits, *spec.test_splits}
    assert len(d["train"]) == 600 and all(len(d[s]) == 200 for s in spec.dev_splits)
    for split, exs in d.items():
        for e in exs:
            assert (e.text_b is not None) == spec.is_pair
            n_words = [len(s.split()) for s in (e.text_a, e.text_b) if s is not None]
            assert all(4 <= n <= 20 for n in n_words), e
            assert sum(n_words) + 3 <= 64
            if split.startswith("test"):
                assert (math.isnan(e.label) if spec.is_regression else e.label == -1)
            elif spec.is_regression:
                assert isinstance(e.label, float) and 0.0 <= e.label <= 5.0
            else:
                assert isinstance(e.label, int) and 0 <= e.label < spec.num_labels
    assert len({e.guid for exs in d.values() for e in exs}) == sum(len(x) for x in d.values())


@pytest.mark.parametrize("task", ALL)
def test_classes_balanced_and_easy_hard_mixed(data: dict, task: str) -> None:
    spec = TASKS[task]
    for split in ("train", *spec.dev_splits):
        exs = data[task][split]
        kinds = Counter(e.kind.split(":")[0] for e in exs)
        assert set(kinds) == {"easy", "hard"} and abs(kinds["easy"] - kinds["hard"]) <= 0.1 * len(exs)
        assert all(e.kind.count(":") == 1 and e.kind.split(":")[1] for e in exs)
        labels = Counter(e.label for e in exs)
        if spec.is_regression:
            assert len(labels) >= 4 and min(labels) == 0.0 and max(labels) == 5.0
        else:
            assert set(labels) == set(range(spec.num_labels))
            assert min(labels.values()) >= 0.8 * len(exs) / spec.num_labels
        for part in ("easy", "hard"):  # both classes among easy and among hard
            sub = {e.label for e in exs if e.kind.startswith(part)}
            assert len(sub) >= (4 if spec.is_regression else spec.num_labels)


def test_every_token_in_vocab(data: dict) -> None:
    vocab = set(SYNTHETIC_VOCAB)
    assert len(vocab) == len(SYNTHETIC_VOCAB) < 400
    assert all(w.isalpha() and w.islower() for w in vocab)
    used = {w for d in data.values() for exs in d.values() for e in exs
            for s in (e.text_a, e.text_b) if s for w in s.split()}
    assert used <= vocab, used - vocab
    assert len(vocab - used) <= 5  # the vocab is not padded with dead words


def test_mnli_mismatched_uses_held_out_vocabulary(data: dict) -> None:
    def words(split: str) -> set[str]:
        return {w for e in data["MNLI"][split] for w in (e.text_a + " " + e.text_b).split()}

    train, matched, mismatched = words("train"), words("dev_matched"), words("dev_mismatched")
    assert len(matched - train) == 0
    assert {"office", "sailor", "manager"} & (mismatched - train)
    assert len(mismatched - train) >= 10


def test_labels_are_a_function_of_text(data: dict) -> None:
    for t in ALL:
        seen: dict[tuple, object] = {}
        for split in ("train", *TASKS[t].dev_splits):
            for e in data[t][split]:
                key = (e.text_a, e.text_b)
                assert seen.setdefault(key, e.label) == e.label, (t, key)


def test_sst2_bag_of_words_solves_easy_not_hard() -> None:
    """Multinomial naive Bayes on word counts: near-perfect on easy, near chance on hard,
    showing the hard half needs composition (negation, contrast)."""
    d = make_synthetic("SST-2", seed=0, n_train=2000, n_dev=600)
    counts = {0: Counter(), 1: Counter()}
    prior = Counter()
    for e in d["train"]:
        prior[e.label] += 1
        counts[e.label].update(e.text_a.split())
    totals = {c: sum(counts[c].values()) for c in counts}
    v = len(SYNTHETIC_VOCAB)

    def predict(text: str) -> int:
        score = {c: math.log(prior[c]) + sum(math.log((counts[c][w] + 1) / (totals[c] + v))
                                            for w in text.split()) for c in (0, 1)}
        return max(score, key=score.__getitem__)

    def acc(part: str) -> float:
        exs = [e for e in d["dev"] if e.kind.startswith(part)]
        return sum(predict(e.text_a) == e.label for e in exs) / len(exs)

    easy, hard = acc("easy"), acc("hard")
    assert easy >= 0.95, easy
    assert hard <= 0.65, hard
    assert easy - hard >= 0.3
