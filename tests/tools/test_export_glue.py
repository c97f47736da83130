"""The GLUE exporter: what it writes, the harness's own GLUE reader reads back as the hub source gives it."""

import math

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")

from dpbert.data import sources
from dpbert.data.sources import load_glue_hub, load_glue_tsv
from dpbert.data.tasks import TASKS, get_task
from dpbert.tools import export_glue
from dpbert.tools.export_glue import ExportError, export, main

# texts a TSV writer can get wrong: quotes (the reader takes them literally), non-ASCII, leading and
# trailing spaces, a backslash, a text that looks like a header word
TEXTS = ['He said "no" .', "Ünïcödé — ok", "  padded  ", "a \\ b", "label", "It's 'quoted' '", "x"]


def _split(spec, n, test, offset):
    col_a, col_b = spec.hub_columns
    data = {col_a: [TEXTS[(i + offset) % len(TEXTS)] + f" {i}" for i in range(n)]}
    if col_b:
        data[col_b] = [f"second {TEXTS[(i + offset + 3) % len(TEXTS)]}" for i in range(n)]
    if spec.is_regression:
        data["label"] = [-1.0] * n if test else [float(f"{(i * 0.37) % 5:.6g}") for i in range(n)]
        features = datasets.Features({**{c: datasets.Value("string") for c in data if c != "label"},
                                      "label": datasets.Value("float32"), "idx": datasets.Value("int32")})
    else:
        data["label"] = [-1] * n if test else [i % spec.num_labels for i in range(n)]
        features = datasets.Features({**{c: datasets.Value("string") for c in data if c != "label"},
                                      "label": datasets.ClassLabel(names=list(spec.label_names)),
                                      "idx": datasets.Value("int32")})
    data["idx"] = list(range(n))
    return datasets.Dataset.from_dict(data, features=features)


def fake_glue(name):
    """A DatasetDict shaped like the hub's glue/<name>: its split names, columns, ClassLabel features."""
    spec = get_task(name)
    splits = {"train": _split(spec, 7, False, 0)}
    for i, split in enumerate(spec.dev_splits):
        splits[export_glue.hub_split(split)] = _split(spec, 5, False, i + 1)
    for split in spec.test_splits:
        splits[split] = _split(spec, 4, True, 2)
    return datasets.DatasetDict(splits)


@pytest.fixture
def hub(monkeypatch):
    """datasets.load_dataset('glue', config) serves fake_glue(config); the hub counts as reachable."""
    calls = []

    def load_dataset(path, name, *args, **kwargs):
        assert path == "glue"
        calls.append(name)
        return fake_glue(name)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(export_glue, "hub_reachable", lambda: True)
    monkeypatch.setattr(sources, "hub_reachable", lambda: True)
    return calls


def _same(a, b):
    """Two Example lists equal field by field (NaN equal to NaN: STS-B's hidden test labels)."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x.guid, x.text_a, x.text_b) == (y.guid, y.text_a, y.text_b)
        assert (math.isnan(x.label) and math.isnan(y.label)) or x.label == y.label, (x, y)
        assert type(x.label) is type(y.label)


@pytest.mark.parametrize("task", list(TASKS))
def test_the_reader_reads_back_what_the_hub_source_gives(hub, tmp_path, task):
    counts = export([task], tmp_path, with_test=True)
    spec = get_task(task)
    assert counts == {task: {"train": 7, **{s: 5 for s in spec.dev_splits}, **{s: 4 for s in spec.test_splits}}}
    from_tsv = load_glue_tsv(task, tmp_path, with_test=True)
    from_hub = load_glue_hub(task, with_test=True)
    assert list(from_tsv) == list(from_hub)
    for split in from_hub:
        _same(from_tsv[split], from_hub[split])


def test_files_have_the_glue_download_layout(hub, tmp_path):
    export(["CoLA", "MRPC", "MNLI", "STS-B"], tmp_path)
    cola = (tmp_path / "CoLA" / "train.tsv").read_text(encoding="utf-8").splitlines()
    # no header; source, label, mark (* for unacceptable), sentence
    assert cola[0].split("\t") == ["glue", "0", "*", 'He said "no" . 0']
    assert cola[1].split("\t") == ["glue", "1", "", "Ünïcödé — ok 1"]
    mrpc = (tmp_path / "MRPC" / "dev.tsv").read_text(encoding="utf-8").splitlines()
    assert mrpc[0] == "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"
    assert sorted(p.name for p in (tmp_path / "MNLI").iterdir()) == ["dev_matched.tsv", "dev_mismatched.tsv",
                                                                    "train.tsv"]
    mnli = (tmp_path / "MNLI" / "train.tsv").read_text(encoding="utf-8").splitlines()
    assert mnli[0].split("\t")[-1] == "gold_label" and mnli[1].split("\t")[-1] == "entailment"
    # STS-B's score: the hub's float32 value, written so that it reads back bit for bit
    score = (tmp_path / "STS-B" / "train.tsv").read_text().splitlines()[2].split("\t")[-1]
    assert float(score) == float(np.float32(0.37)) and score == repr(float(np.float32(0.37)))
    assert not list(tmp_path.rglob("*.partial")) and not (tmp_path / "CoLA" / "test.tsv").exists()


def test_tabs_and_line_breaks_in_a_text_become_spaces(tmp_path):
    spec = get_task("SST-2")
    header, rows = export_glue.task_rows(spec, "train", [{"sentence": "a\tb\nc\r\nd", "label": 1, "idx": 0}])
    export_glue.write_tsv(tmp_path / "SST-2" / "train.tsv", header, rows)
    export_glue.write_tsv(tmp_path / "SST-2" / "dev.tsv", header, rows)
    (ex,) = load_glue_tsv("SST-2", tmp_path)["train"]
    assert (ex.text_a, ex.label) == ("a b c  d", 1)


def test_a_label_outside_the_task_is_refused():
    with pytest.raises(ExportError, match=r"label 3 is not a class id of RTE \(0..1\)"):
        export_glue.task_rows(get_task("RTE"), "dev", [{"sentence1": "a", "sentence2": "b", "label": 3}])
    with pytest.raises(ExportError, match=r"not a similarity score in \[0, 5\]"):
        export_glue.task_rows(get_task("STS-B"), "train", [{"sentence1": "a", "sentence2": "b", "label": 7.5}])


def test_other_class_names_are_refused(monkeypatch, tmp_path):
    swapped = fake_glue("sst2")
    swapped["train"] = swapped["train"].cast_column("label", datasets.ClassLabel(names=["positive", "negative"]))
    with pytest.raises(ExportError, match=r"names its labels \['positive', 'negative'\]"):
        export_glue.write_task(get_task("SST-2"), swapped, tmp_path)


def test_existing_files_are_kept_unless_overwrite(hub, tmp_path):
    (tmp_path / "RTE").mkdir()
    (tmp_path / "RTE" / "dev.tsv").write_text("mine\n")
    with pytest.raises(ExportError, match=r"RTE/dev.tsv already exist\(s\). Pass --overwrite"):
        export(["RTE"], tmp_path)
    assert (tmp_path / "RTE" / "dev.tsv").read_text() == "mine\n" and hub == []
    export(["RTE"], tmp_path, overwrite=True)
    assert load_glue_tsv("RTE", tmp_path)["dev"][0].label == 0


def test_an_unknown_task_names_the_eight(tmp_path):
    with pytest.raises(ExportError, match=r"WNLI.*writes the paper's 8 GLUE tasks: CoLA, MNLI"):
        export(["WNLI"], tmp_path)


def test_offline_it_stops_with_one_paragraph_and_writes_nothing(monkeypatch, tmp_path, capsys):
    """No network: datasets (offline mode, no cache) raises ConnectionError; the tool prints one paragraph."""

    def offline(path, name, *args, **kwargs):
        raise ConnectionError(f"Couldn't reach '{path}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setattr(export_glue, "hub_reachable", lambda: False)
    with pytest.raises(SystemExit) as stop:
        main(["--out", str(tmp_path / "glue"), "--tasks", "CoLA", "MRPC"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1  # one paragraph
    assert "Cannot export GLUE CoLA" in err and "cannot be reached from this machine" in err
    assert "ConnectionError: Couldn't reach 'glue' on the Hub (OfflineModeIsEnabled)" in err
    # the layout to build by hand instead, and how to point the workflow at it
    assert "CoLA/{train,dev}.tsv" in err and "MNLI/{train,dev_matched,dev_mismatched}.tsv" in err
    assert '"source": "glue_tsv", "data_dir"' in err
    assert not (tmp_path / "glue").exists()


def test_main_prints_what_it_wrote(hub, tmp_path, capsys):
    main(["--out", str(tmp_path), "--tasks", "mrpc"])
    assert capsys.readouterr().out == f"wrote {tmp_path / 'MRPC'}: train.tsv 7 rows, dev.tsv 5 rows\n"
