"""Tests for dpbert.data.tasks and dpbert.data.sources (GLUE TSV quirks, hub offline, load_task)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dpbert.data import sources as data_mod
from dpbert.data.examples import Example
from dpbert.data.sources import DataError, load_glue_hub, load_glue_tsv, load_task
from dpbert.data.tasks import TASKS, UnknownTaskError, get_task

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- tasks
def test_all_eight_tasks_in_paper_order_with_label_counts() -> None:
    assert list(TASKS) == ["CoLA", "MNLI", "SST-2", "QNLI", "MRPC", "QQP", "RTE", "STS-B"]
    counts = {n: t.num_labels for n, t in TASKS.items()}
    assert counts == {"CoLA": 2, "MNLI": 3, "SST-2": 2, "QNLI": 2, "MRPC": 2, "QQP": 2, "RTE": 2, "STS-B": 1}
    assert [n for n, t in TASKS.items() if t.is_regression] == ["STS-B"]
    assert [n for n, t in TASKS.items() if not t.is_pair] == ["CoLA", "SST-2"]
    assert TASKS["MNLI"].dev_splits == ("dev_matched", "dev_mismatched")
    assert TASKS["MNLI"].label_names == ("entailment", "neutral", "contradiction")
    assert TASKS["RTE"].label_names == ("entailment", "not_entailment")
    assert TASKS["CoLA"].metric == "mcc" and TASKS["STS-B"].metric == "pearson_spearman"
    assert TASKS["MRPC"].metric == TASKS["QQP"].metric == "acc_f1"
    for t in TASKS.values():
        assert len(t.label_names) == (0 if t.is_regression else t.num_labels)


def test_get_task_accepts_hub_and_case_insensitive_names() -> None:
    assert get_task("sst2") == get_task("SST-2") == get_task("sst-2")
    assert get_task("stsb").name == "STS-B"
    assert get_task("cola") is TASKS["CoLA"]


def test_unknown_task_suggests_closest() -> None:
    with pytest.raises(UnknownTaskError) as ei:
        get_task("SST2x")
    msg = str(ei.value)
    assert "'SST2x'" in msg and "Did you mean 'SST-2'" in msg and "CoLA" in msg
    assert isinstance(ei.value, ValueError)


# --------------------------------------------------------------------------- fake GLUE folder
def _write(path: Path, lines: list[str], bom: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(("\ufeff" if bom else "") + "".join(l + "\n" for l in lines), encoding="utf-8")


def _t(*cols: str) -> str:
    return "\t".join(cols)


MNLI_TRAIN_HDR = _t("index", "promptID", "pairID", "genre", "sentence1_binary_parse",
                    "sentence2_binary_parse", "sentence1_parse", "sentence2_parse",
                    "sentence1", "sentence2", "label1", "gold_label")
MNLI_DEV_HDR = _t("index", "promptID", "pairID", "genre", "sentence1_binary_parse",
                  "sentence2_binary_parse", "sentence1_parse", "sentence2_parse",
                  "sentence1", "sentence2", "label1", "label2", "label3", "label4", "label5",
                  "gold_label")
STSB_HDR = _t("index", "genre", "filename", "year", "old_index", "source1", "source2",
              "sentence1", "sentence2", "score")


def _mnli_row(i: int, s1: str, s2: str, gold: str, dev: bool) -> str:
    labels = [gold] * (5 if dev else 1)
    return _t(str(i), "p", "q", "fiction", "( b1 )", "( b2 )", "(p1)", "(p2)", s1, s2, *labels, gold)


@pytest.fixture()
def glue_root(tmp_path: Path) -> Path:
    """A tiny GLUE download folder reproducing each file's real quirks."""
    r = tmp_path / "glue_data"
    # CoLA: train/dev without header (source, label, original mark, sentence); test with one.
    cola = [_t("gj04", "1", "", "Our friends won't buy this analysis."),
            _t("gj04", "0", "*", "One more pseudo generalization and I'm giving up."),
            _t("gj04", "1", "", 'He said "fine and left.')]
    _write(r / "CoLA/train.tsv", cola)
    _write(r / "CoLA/dev.tsv", cola[:2])
    _write(r / "CoLA/test.tsv", [_t("index", "sentence"), _t("0", "Bill whistled past the house.")])
    _write(r / "SST-2/train.tsv", [_t("sentence", "label"), _t("hide new secretions ", "0"),
                                   _t('a "gorgeous film', "1")])
    _write(r / "SST-2/dev.tsv", [_t("sentence", "label"), _t("it 's a charming journey . ", "1")])
    # MRPC: BOM'd header with spaces and '#'; a lone quote inside a sentence.
    mrpc_hdr = _t("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String")
    _write(r / "MRPC/train.tsv", [
        mrpc_hdr,
        _t("1", "702876", "702977", 'Amrozi accused his brother , whom he called " the witness .',
           "Referring to him as only the witness , Amrozi accused his brother ."),
        _t("0", "2108705", "2108831", "Yucaipa owned Dominick 's before selling .",
           "Yucaipa bought Dominick 's in 1995 ."),
        _t("1", "1", "2", "A third row .", "The third row ."),
    ], bom=True)
    _write(r / "MRPC/dev.tsv", [mrpc_hdr, _t("1", "1", "2", "He left .", "He went away .")], bom=True)
    # QQP: one malformed row (a question containing a tab -> 7 columns, one truncated -> 5).
    qqp_hdr = _t("id", "qid1", "qid2", "question1", "question2", "is_duplicate")
    _write(r / "QQP/train.tsv", [
        qqp_hdr,
        _t("0", "1", "2", "What is the step by step guide?", 'What is "the guide?', "0"),
        _t("1", "3", "4", "How do I learn?", "broken row"),
        _t("2", "5", "6", "Why is the sky blue?", "Why is sky blue?", "1"),
    ])
    _write(r / "QQP/dev.tsv", [qqp_hdr, _t("9", "1", "2", "a?", "b?", "0"),
                               _t("8", "1", "2", "x\ty", "b?", "1", "extra")])
    _write(r / "STS-B/train.tsv", [STSB_HDR, _t("0", "main-captions", "MSRvid", "2012test", "0001",
                                                "none", "none", "A plane is taking off.",
                                                "An air plane is taking off.", "5.000")])
    _write(r / "STS-B/dev.tsv", [STSB_HDR, _t("0", "g", "f", "y", "o", "n", "n", "A man plays.",
                                              "A cat eats.", "0.250")])
    _write(r / "MNLI/train.tsv", [MNLI_TRAIN_HDR, _mnli_row(0, "P one .", "H one .", "neutral", False),
                                  _mnli_row(1, "P two .", "H two .", "contradiction", False)])
    _write(r / "MNLI/dev_matched.tsv", [MNLI_DEV_HDR, _mnli_row(0, "M p .", "M h .", "entailment", True)])
    _write(r / "MNLI/dev_mismatched.tsv", [MNLI_DEV_HDR,
                                           _mnli_row(0, "MM p .", "MM h .", "contradiction", True),
                                           _mnli_row(1, "MM p2 .", "MM h2 .", "neutral", True)])
    _write(r / "MNLI/test_matched.tsv", [_t("index", "sentence1", "sentence2"), _t("0", "a", "b")])
    _write(r / "MNLI/test_mismatched.tsv", [_t("index", "sentence1", "sentence2"), _t("0", "c", "d")])
    _write(r / "QNLI/train.tsv", [_t("index", "question", "sentence", "label"),
                                  _t("0", "When?", "In 1990.", "entailment"),
                                  _t("1", "Who?", "Nobody knows.", "not_entailment")])
    _write(r / "QNLI/dev.tsv", [_t("index", "question", "sentence", "label"), _t("0", "Q?", "S.", "not_entailment")])
    _write(r / "RTE/train.tsv", [_t("index", "sentence1", "sentence2", "label"),
                                 _t("0", "A dog ran.", "An animal ran.", "entailment")])
    _write(r / "RTE/dev.tsv", [_t("index", "sentence1", "sentence2", "label"),
                               _t("0", "A dog ran.", "A cat ran.", "not_entailment")])
    return r


def test_cola_headerless_train_dev_and_headered_test(glue_root: Path) -> None:
    s = load_glue_tsv("CoLA", glue_root, with_test=True)
    assert set(s) == {"train", "dev", "test"}
    assert [(e.text_a, e.label, e.text_b) for e in s["train"]] == [
        ("Our friends won't buy this analysis.", 1, None),
        ("One more pseudo generalization and I'm giving up.", 0, None),
        ('He said "fine and left.', 1, None)]
    assert len(s["dev"]) == 2
    assert [(e.text_a, e.label) for e in s["test"]] == [("Bill whistled past the house.", -1)]


def test_sst2_and_mrpc_quotes_do_not_swallow_lines(glue_root: Path) -> None:
    sst = load_glue_tsv("SST-2", glue_root)
    assert [(e.text_a, e.label) for e in sst["train"]] == [("hide new secretions ", 0), ('a "gorgeous film', 1)]
    mrpc = load_glue_tsv("MRPC", glue_root)["train"]
    assert len(mrpc) == 3
    assert mrpc[0].text_a == 'Amrozi accused his brother , whom he called " the witness .'
    assert mrpc[0].text_b == "Referring to him as only the witness , Amrozi accused his brother ."
    assert [e.label for e in mrpc] == [1, 0, 1]
    assert mrpc[2].text_a == "A third row ."


def test_qqp_skips_malformed_rows_and_logs(glue_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="dpbert.data.sources"):
        s = load_glue_tsv("QQP", glue_root)
    assert [(e.text_a, e.text_b, e.label) for e in s["train"]] == [
        ("What is the step by step guide?", 'What is "the guide?', 0),
        ("Why is the sky blue?", "Why is sky blue?", 1)]
    assert len(s["dev"]) == 1
    assert "skipped 1 malformed row" in caplog.text and "train.tsv" in caplog.text


def _sst2_train(root: Path, good: int, bad: int) -> Path:
    """An SST-2 train.tsv with ``good`` well-formed rows, then ``bad`` rows of three columns."""
    rows = [_t("sentence", "label")] + [_t(f"good {i} .", str(i % 2)) for i in range(good)]
    rows += [_t(f"bad {i} .", "1", "extra") for i in range(bad)]
    _write(root / "SST-2/train.tsv", rows)
    return root / "SST-2/train.tsv"


def test_a_few_malformed_rows_are_dropped_with_the_warning(glue_root: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    # 5% of 200 rows: at the limit, dropped; and a few rows of a tiny file, far above 5%, dropped too
    _sst2_train(glue_root, good=190, bad=10)
    with caplog.at_level("WARNING", logger="dpbert.data.sources"):
        assert len(load_glue_tsv("SST-2", glue_root)["train"]) == 190
    assert "skipped 10 malformed row" in caplog.text
    _sst2_train(glue_root, good=3, bad=data_mod.MALFORMED_ROWS_ALWAYS_DROPPED)
    assert len(load_glue_tsv("SST-2", glue_root)["train"]) == 3


def test_many_malformed_rows_refuse_the_file_naming_the_first_bad_line(glue_root: Path) -> None:
    path = _sst2_train(glue_root, good=180, bad=20)  # 10% of 200 rows
    with pytest.raises(DataError) as ei:
        load_glue_tsv("SST-2", glue_root)
    msg = str(ei.value)
    assert str(path) in msg and "20 malformed rows of 200 (10%" in msg
    # line 1 is the header, the 180 good rows are lines 2-181
    assert "2 tab-separated columns like its header (sentence, label)" in msg
    assert "the first bad one, line 182, has 3" in msg
    assert "Fix: restore train.tsv from the GLUE download" in msg and "\n" not in msg
    _sst2_train(glue_root, good=3, bad=data_mod.MALFORMED_ROWS_ALWAYS_DROPPED + 1)
    with pytest.raises(DataError, match="6 malformed rows of 9"):
        load_glue_tsv("SST-2", glue_root)


def test_mnli_string_labels_and_two_dev_files(glue_root: Path) -> None:
    s = load_glue_tsv("MNLI", glue_root, with_test=True)
    assert set(s) == {"train", "dev_matched", "dev_mismatched", "test_matched", "test_mismatched"}
    assert [e.label for e in s["train"]] == [1, 2]
    assert [(e.text_a, e.text_b, e.label) for e in s["dev_matched"]] == [("M p .", "M h .", 0)]
    assert [e.label for e in s["dev_mismatched"]] == [2, 1]
    assert s["test_mismatched"][0].text_a == "c" and s["test_mismatched"][0].label == -1


def test_stsb_floats_qnli_rte_strings(glue_root: Path) -> None:
    st = load_glue_tsv("STS-B", glue_root)
    assert st["train"][0] == Example("stsb-train-0", "A plane is taking off.", "An air plane is taking off.", 5.0)
    assert isinstance(st["dev"][0].label, float) and st["dev"][0].label == pytest.approx(0.25)
    assert [e.label for e in load_glue_tsv("QNLI", glue_root)["train"]] == [0, 1]
    rte = load_glue_tsv("RTE", glue_root)
    assert rte["train"][0].label == 0 and rte["dev"][0].label == 1


def test_task_folder_found_case_insensitively(glue_root: Path) -> None:
    (glue_root / "RTE").rename(glue_root / "rte")
    assert len(load_glue_tsv("RTE", glue_root)["train"]) == 1


# --------------------------------------------------------------------------- TSV errors
def test_missing_data_dir(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="does not exist") as ei:
        load_glue_tsv("CoLA", missing)
    assert str(missing) in str(ei.value)
    with pytest.raises(DataError, match="no data_dir"):
        load_task("CoLA", "glue_tsv", data_dir=None)


def test_missing_task_folder_names_expected_and_present(glue_root: Path) -> None:
    import shutil

    shutil.rmtree(glue_root / "SST-2")
    with pytest.raises(DataError) as ei:
        load_glue_tsv("sst2", glue_root)
    msg = str(ei.value)
    assert "'SST-2'" in msg and "CoLA" in msg and "MRPC" in msg and str(glue_root) in msg


def test_missing_file(glue_root: Path) -> None:
    (glue_root / "MNLI/dev_mismatched.tsv").unlink()
    with pytest.raises(DataError, match="dev_mismatched.tsv") as ei:
        load_glue_tsv("MNLI", glue_root)
    assert "missing" in str(ei.value) and "dev_matched.tsv" in str(ei.value)


def test_missing_column(glue_root: Path) -> None:
    _write(glue_root / "RTE/dev.tsv", [_t("index", "sentence1", "sentence2", "labelx"), _t("0", "a", "b", "entailment")])
    with pytest.raises(DataError) as ei:
        load_glue_tsv("RTE", glue_root)
    msg = str(ei.value)
    assert "RTE" in msg and "dev.tsv" in msg and "'label'" in msg and "labelx" in msg


@pytest.mark.parametrize("task,path,lines,bad", [
    ("CoLA", "CoLA/train.tsv", [_t("gj04", "1", "", "ok ."), _t("gj04", "2", "*", "bad .")], "'2'"),
    ("MNLI", "MNLI/train.tsv", [MNLI_TRAIN_HDR, _mnli_row(0, "p", "h", "neutral", False),
                                _mnli_row(1, "p", "h", "maybe", False)], "'maybe'"),
    ("STS-B", "STS-B/dev.tsv", [STSB_HDR, _t("0", "g", "f", "y", "o", "n", "n", "a", "b", "7.5")], "'7.5'"),
])
def test_bad_label_names_row_and_value(glue_root: Path, task: str, path: str, lines: list[str], bad: str) -> None:
    _write(glue_root / path, lines)
    with pytest.raises(DataError) as ei:
        load_glue_tsv(task, glue_root)
    msg = str(ei.value)
    assert path.split("/")[1] in msg and bad in msg
    assert ("line 3" if task == "MNLI" else "line 2") in msg


def test_empty_file_and_header_only(glue_root: Path) -> None:
    (glue_root / "SST-2/dev.tsv").write_text("")
    with pytest.raises(DataError, match="empty") as ei:
        load_glue_tsv("SST-2", glue_root)
    assert "SST-2" in str(ei.value) and "dev.tsv" in str(ei.value)
    _write(glue_root / "SST-2/dev.tsv", [_t("sentence", "label")])
    with pytest.raises(DataError, match="no usable rows"):
        load_glue_tsv("SST-2", glue_root)


# --------------------------------------------------------------------------- hub
def test_hub_offline_env_raises_dataerror_quickly() -> None:
    """Real datasets code path in a fresh interpreter (datasets reads the flags at import)."""
    code = textwrap.dedent("""
        from dpbert.data.sources import load_glue_hub, DataError
        try:
            load_glue_hub("SST-2")
        except DataError as e:
            print("DATAERROR:", e)
    """)
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert time.monotonic() - t0 < 60
    assert "DATAERROR:" in out.stdout, out.stdout + out.stderr
    assert "glue_tsv" in out.stdout and "synthetic" in out.stdout and "hub" in out.stdout


def test_hub_connection_error_becomes_dataerror(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def boom(*a: object, **k: object) -> None:
        raise ConnectionError("Couldn't reach 'glue' on the Hub")

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", boom)
    with pytest.raises(DataError) as ei:
        load_task("MNLI", "hub")
    msg = str(ei.value)
    assert "could not be reached" in msg and "data.source: glue_tsv" in msg and "synthetic" in msg
    assert "ConnectionError" in msg


def test_hub_unreachable_host_reads_the_datasets_cache_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HF_*_OFFLINE flag but no connection: datasets is asked in offline mode (its cache, no retries)."""
    import datasets
    import datasets.config

    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(data_mod, "hub_reachable", lambda timeout=3.0: False)
    seen = []

    def cached_only(path: str, name: str) -> dict:
        seen.append(datasets.config.HF_HUB_OFFLINE)
        if name == "rte":
            return {"train": [{"sentence1": "a", "sentence2": "b", "label": 1}],
                    "validation": [{"sentence1": "c", "sentence2": "d", "label": 0}]}
        raise ConnectionError("Couldn't reach 'glue' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", cached_only)
    assert load_glue_hub("RTE")["train"] == [Example("rte-train-0", "a", "b", 1)]
    with pytest.raises(DataError, match="could not be reached or the dataset is not cached"):
        load_glue_hub("CoLA")
    assert seen == [True, True] and datasets.config.HF_HUB_OFFLINE is False  # offline for the call only


def test_hub_mapping_with_fake_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    fake = {
        "train": [{"premise": "p", "hypothesis": "h", "label": 2}],
        "validation_matched": [{"premise": "pm", "hypothesis": "hm", "label": 0}],
        "validation_mismatched": [{"premise": "pmm", "hypothesis": "hmm", "label": 1}],
        "test_matched": [{"premise": "t", "hypothesis": "u", "label": -1}],
        "test_mismatched": [{"premise": "t2", "hypothesis": "u2", "label": -1}],
    }
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", lambda path, name: fake if (path, name) == ("glue", "mnli") else None)
    s = load_task("MNLI", "hub", with_test=True)
    assert s["train"][0] == Example("mnli-train-0", "p", "h", 2)
    assert s["dev_mismatched"][0].text_a == "pmm" and s["dev_matched"][0].label == 0
    assert s["test_matched"][0].label == -1


# --------------------------------------------------------------------------- load_task
def test_load_task_unknown_source_and_bad_caps() -> None:
    with pytest.raises(DataError, match="Unknown data source 'tsv'"):
        load_task("CoLA", "tsv")
    with pytest.raises(DataError, match="max_train"):
        load_task("CoLA", "synthetic", max_train=0)


def test_load_task_caps_are_seeded_and_keep_classes() -> None:
    full = load_task("SST-2", "synthetic", synthetic_train=300, synthetic_dev=100)
    a = load_task("SST-2", "synthetic", synthetic_train=300, synthetic_dev=100, max_train=40, max_dev=10, seed=0)
    b = load_task("SST-2", "synthetic", synthetic_train=300, synthetic_dev=100, max_train=40, max_dev=10, seed=0)
    assert a == b and len(a["train"]) == 40 and len(a["dev"]) == 10
    assert {e.label for e in a["train"]} == {0, 1}
    assert a["train"] != full["train"][:40]  # not simply a prefix
    assert set(a["train"]) <= set(full["train"])
    assert data_mod._cap(full["train"], 40, 1, "train") != a["train"]  # the seed matters


def test_load_task_glue_tsv_caps(glue_root: Path) -> None:
    s = load_task("mrpc", "glue_tsv", data_dir=str(glue_root), max_train=2)
    assert len(s["train"]) == 2 and len(s["dev"]) == 1


def test_load_task_empty_synthetic_split() -> None:
    with pytest.raises(DataError, match="empty"):
        load_task("RTE", "synthetic", synthetic_dev=0)


def test_stsb_test_label_nan(glue_root: Path) -> None:
    _write(glue_root / "STS-B/test.tsv", [_t("index", "genre", "filename", "year", "old_index",
                                             "source1", "source2", "sentence1", "sentence2"),
                                          _t("0", "g", "f", "y", "o", "n", "n", "a b", "c d")])
    s = load_glue_tsv("STS-B", glue_root, with_test=True)
    assert math.isnan(s["test"][0].label) and s["test"][0].text_b == "c d"


def test_token_cap_keeps_a_seeded_subset_within_the_budget(tokenizer) -> None:
    from dpbert.run.prepare import cap_tokens

    examples = [Example(f"e{i}", " ".join(f"w{j}" for j in range(1 + i % 9)), None, i % 2) for i in range(60)]
    lengths = {e.guid: len(e.text_a.split()) + 2 for e in examples}  # [CLS] ... [SEP]
    kept = cap_tokens(examples, tokenizer, 64, 100, seed=0)
    assert sum(lengths[e.guid] for e in kept) <= 100
    assert sum(lengths[e.guid] for e in kept) > 100 - 11  # it stops only when the next example does not fit
    assert kept == [e for e in examples if e in kept]  # original order
    assert kept != examples[: len(kept)]  # a shuffled subset, not a prefix
    assert cap_tokens(examples, tokenizer, 64, 100, seed=0) == kept
    assert cap_tokens(examples, tokenizer, 64, 100, seed=1) != kept
    assert cap_tokens(examples, tokenizer, 64, 10**6, seed=0) == examples
