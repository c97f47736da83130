"""Tests for dpbert.data.synthetic: determinism, GLUE shapes, the stated easy/hard mix, balance, vocabulary,
a rule-based oracle for every label, MNLI's mismatched shift, and that the hard half needs composition."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from dpbert.data.examples import Example
from dpbert.data.synthetic import (
    ALWAYS_EASY,
    SYNTHETIC_VOCAB,
    TASK_MIX,
    claim_truth,
    easy_share,
    make_synthetic,
    oracle_label,
)
from dpbert.data.tasks import TASKS

REPO = Path(__file__).resolve().parents[2]
ALL = list(TASKS)
N_TRAIN, N_DEV = 600, 250


@pytest.fixture(scope="module")
def data() -> dict[str, dict[str, list[Example]]]:
    return {t: make_synthetic(t, seed=0, n_train=N_TRAIN, n_dev=N_DEV, with_test=True) for t in ALL}


def _labelled(task: str) -> tuple[str, ...]:
    return ("train", *TASKS[task].dev_splits)


def test_deterministic_across_calls_and_seed_sensitive() -> None:
    for t in ALL:
        a = make_synthetic(t, 3, 50, 20)
        assert a == make_synthetic(t, 3, 50, 20)
        assert a != make_synthetic(t, 4, 50, 20)
        # dev does not depend on n_train, and is not a copy of train
        dev = TASKS[t].dev_splits[0]
        assert make_synthetic(t, 3, 10, 20)[dev] == a[dev]


def test_deterministic_across_python_processes() -> None:
    code = ("from dpbert.data.synthetic import make_synthetic as m; import hashlib;"
            "print(hashlib.sha256(repr(m('MNLI', 7, 30, 10)).encode()).hexdigest())")
    outs = {subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                           env={"PYTHONPATH": str(REPO), "PYTHONHASHSEED": str(h)}).stdout for h in (1, 2)}
    assert len(outs) == 1 and len(outs.pop().strip()) == 64


@pytest.mark.parametrize("task", ALL)
def test_shapes_splits_and_labels(data: dict, task: str) -> None:
    spec = TASKS[task]
    d = data[task]
    assert set(d) == {"train", *spec.dev_splits, *spec.test_splits}
    assert len(d["train"]) == N_TRAIN and all(len(d[s]) == N_DEV for s in spec.dev_splits)
    for split, exs in d.items():
        for e in exs:
            assert (e.text_b is not None) == spec.is_pair
            n_words = [len(s.split()) for s in (e.text_a, e.text_b) if s is not None]
            assert all(4 <= n <= 20 for n in n_words), e
            assert sum(n_words) + 3 <= 32, e  # short: a demo training step costs what its longest row costs
            if split.startswith("test"):
                assert (math.isnan(e.label) if spec.is_regression else e.label == -1)
            elif spec.is_regression:
                assert isinstance(e.label, float) and 0.0 <= e.label <= 5.0
            else:
                assert isinstance(e.label, int) and 0 <= e.label < spec.num_labels
    assert len({e.guid for exs in d.values() for e in exs}) == sum(len(x) for x in d.values())


@pytest.mark.parametrize("task", ALL)
def test_easy_hard_mix_is_as_stated(data: dict, task: str) -> None:
    spec = TASKS[task]
    assert set(TASK_MIX) == set(TASKS)
    for split in _labelled(task):
        exs = data[task][split]
        kinds = [e.kind for e in exs]
        assert all(re.fullmatch(r"easy:[a-z_]+|hard:[a-z_]+[123]", k) for k in kinds), set(kinds)
        n_easy = sum(k.startswith("easy:") for k in kinds)
        assert n_easy == round(easy_share(task, split) * len(exs)), (split, n_easy)
        if not spec.is_regression:
            for c in ALWAYS_EASY.get(task, ()):  # e.g. MNLI's neutral: one property word decides it
                assert all(e.kind.startswith("easy:") for e in exs if e.label == c)


@pytest.mark.parametrize("task", ALL)
def test_classes_balanced_within_easy_and_hard(data: dict, task: str) -> None:
    spec = TASKS[task]
    for split in _labelled(task):
        exs = data[task][split]
        labels = Counter(e.label for e in exs)
        if spec.is_regression:  # six strata: the scores 0..5, as many of each
            assert sorted(labels) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
            assert max(labels.values()) - min(labels.values()) <= 1
        else:
            assert set(labels) == set(range(spec.num_labels))
            assert max(labels.values()) - min(labels.values()) <= 1
        for part in ("easy", "hard"):
            sub = Counter(e.label for e in exs if e.kind.startswith(part))
            always = ALWAYS_EASY.get(task, ())
            wanted = (6 if spec.is_regression else spec.num_labels) - (len(always) if part == "hard" else 0)
            assert len(sub) == wanted, (split, part, sub)
            counts = [v for k, v in sub.items() if k not in always]
            assert max(counts) - min(counts) <= 1, (split, part, sub)


@pytest.mark.parametrize("task", ALL)
def test_oracle_reads_every_label_from_the_text(data: dict, task: str) -> None:
    """A rule-based reader (the module's stated rules, applied to the words) gets every label."""
    for split in _labelled(task):
        for e in data[task][split]:
            assert oracle_label(task, e.text_a, e.text_b) == e.label, (split, e)


def test_oracle_on_hand_written_examples() -> None:
    assert oracle_label("SST-2", "i do not think the film was not good", None) == 1
    assert oracle_label("SST-2", "the plot was great but the music was not bad", None) == 1
    assert oracle_label("SST-2", "the plot was great but the music was dull", None) == 0
    assert oracle_label("RTE", "it is not true that the box is open", "the box is closed") == 0
    assert oracle_label("MNLI", "the box is open", "i think the box is not closed") == 0
    assert oracle_label("MNLI", "the box is not open", "the box is not closed") == 2
    assert oracle_label("MNLI", "the box is open", "the box is not red") == 1
    assert oracle_label("QNLI", "where is the cup", "i do not think the cup is not in the hall") == 0
    assert oracle_label("QNLI", "where is the cup", "nobody knows where the cup is") == 1
    assert oracle_label("CoLA", "the box near the cups is open", None) == 1
    assert oracle_label("CoLA", "the box near the cups are open", None) == 0
    assert oracle_label("CoLA", "the box that is not open has ever been full", None) == 0
    assert oracle_label("CoLA", "i do not think the box has ever been full", None) == 1
    assert oracle_label("CoLA", "the the box is open", None) == 0
    assert oracle_label("STS-B", "the box is open", "probably the box is not closed") == 4.0
    assert oracle_label("STS-B", "the box is open", "maybe the box is closed") == 0.0
    assert claim_truth("they say it is not true that the jar is empty") == 1


def _surface_label(task: str, e: Example) -> float | int:
    """What a reader of the cue alone answers: the oracle once every "not" is deleted but one right before
    the last word of the second sentence (the easy contradiction of MNLI: "the box is not open")."""
    def strip(s: str | None, keep_local: bool = False) -> str | None:
        if s is None:
            return None
        w = s.split()
        return " ".join(x for i, x in enumerate(w) if x != "not" or (keep_local and i == len(w) - 2))
    if task == "SST-2" and "but" in e.text_a.split():  # the cue of a contrast: its first sentiment word
        first = strip(e.text_a).split(" but ")[0]
        return oracle_label(task, first, None)
    if task == "CoLA":  # agreement: the nearest noun; "ever": a "not" anywhere licenses it
        w = e.text_a.split()
        if "near" in w or "behind" in w:
            noun = w[w.index("is" if "is" in w else "are") - 1]
            return int((noun.endswith("s")) == ("are" in w))
        if "ever" in w:
            return int("not" in w)
        return e.label
    return oracle_label(task, strip(e.text_a), strip(e.text_b, keep_local=task != "QNLI"))


@pytest.mark.parametrize("task", ALL)
def test_hard_examples_need_composition(data: dict, task: str) -> None:
    """The cue alone gets every easy example right and the hard ones about as often as chance: the
    hard half is what separates a reader that composes from one that reads the cue."""
    exs = data[task]["train"]
    for part, lo, hi in (("easy", 1.0, 1.0), ("hard", 0.0, 0.65)):
        sub = [e for e in exs if e.kind.startswith(part)]
        if TASKS[task].is_regression:  # the score: hedges are read right, agreement at chance
            acc = sum(abs(_surface_label(task, e) - e.label) < 1e-9 for e in sub) / len(sub)
        else:
            acc = sum(_surface_label(task, e) == e.label for e in sub) / len(sub)
        assert lo <= acc <= hi, (task, part, acc)


def test_every_token_in_vocab(data: dict) -> None:
    vocab = set(SYNTHETIC_VOCAB)
    assert len(vocab) == len(SYNTHETIC_VOCAB) < 400
    assert all(w.isalpha() and w.islower() for w in vocab)
    used = {w for d in data.values() for exs in d.values() for e in exs
            for s in (e.text_a, e.text_b) if s for w in s.split()}
    assert used <= vocab, used - vocab
    assert not vocab - used  # the vocab is not padded with dead words


def test_mnli_mismatched_is_a_shifted_distribution_over_the_same_words(data: dict) -> None:
    d = data["MNLI"]

    def words(split: str) -> Counter:
        return Counter(w for e in d[split] for w in (e.text_a + " " + e.text_b).split())

    train, matched, mismatched = words("train"), words("dev_matched"), words("dev_mismatched")
    assert set(mismatched) <= set(train) and set(matched) <= set(train)  # no word unseen in training
    # other templates: "was" for "is", place phrases, the other wrappers
    for w in ("was", "in", "true", "say"):
        share = {k: c[w] / sum(c.values()) for k, c in (("m", matched), ("mm", mismatched))}
        assert share["mm"] > 2 * share["m"], (w, share)
    # another mix: fewer easy examples, deeper nesting
    for split, share in (("dev_matched", 0.67), ("dev_mismatched", 0.55)):
        assert sum(e.kind.startswith("easy") for e in d[split]) == round(share * N_DEV)
    depth = {s: sum(int(e.kind[-1]) for e in d[s] if e.kind.startswith("hard")) /
             sum(e.kind.startswith("hard") for e in d[s]) for s in ("dev_matched", "dev_mismatched")}
    assert depth["dev_mismatched"] > depth["dev_matched"] + 0.2, depth


def test_labels_are_a_function_of_text(data: dict) -> None:
    for t in ALL:
        seen: dict[tuple, object] = {}
        for split in _labelled(t):
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


def test_small_and_odd_sizes() -> None:
    for t in ALL:
        d = make_synthetic(t, 1, 7, 5, with_test=True, n_test=3)
        assert len(d["train"]) == 7 and all(len(d[s]) == 5 for s in TASKS[t].dev_splits)
        assert all(len(d[s]) == 3 for s in TASKS[t].test_splits)
        assert all(oracle_label(t, e.text_a, e.text_b) == e.label for e in d["train"])
    with pytest.raises(ValueError):
        make_synthetic("RTE", 0, -1, 5)


def test_synthetic_check_helpers() -> None:
    """The measurement tool's pure parts: the best constant prediction and the printed table."""
    from dpbert.tools.synthetic_check import format_report, majority_score, part_score

    assert majority_score("acc", [0, 1, 1, 2], 3) == 50.0
    assert majority_score("mcc", [0, 1, 1, 0], 2) == 0.0
    assert majority_score("acc_f1", [0, 1] * 50, 2) == pytest.approx((50 + 200 / 3) / 2)  # all "1": F1 2/3
    assert majority_score("pearson_spearman", [0.0, 5.0], 1) == 0.0
    assert part_score(False, [1, 0, 1], [1, 1, 1]) == pytest.approx(200 / 3)
    assert math.isnan(part_score(False, [], []))
    split = {"n": 10, "majority": 50.0, "easy_share": 0.5, "score": {12: 90.0, 6: 70.0}, "se": {12: 1.0, 6: 2.0},
             "easy": {12: 100.0, 6: 100.0}, "hard": {12: 80.0, 6: 40.0}}
    text = format_report([{"task": "RTE", "train_s": 1.0, "splits": {"dev": split}}], [6])
    assert "RTE" in text and "90.0±1.0" in text and "BERT-base - 6L = 20.0" in text and "RTE +40.0" in text
