"""The word-overlap regression task: scores, the STS-B layout, and that the project's GLUE reader takes it."""

import pytest

from dpbert.data.sources import DataError
from dpbert.tools.overlap_regression import build, overlap_score

MRPC_HEADER = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"


def _mrpc(folder, pairs):
    folder.mkdir(parents=True)
    for split in ("train", "dev"):
        rows = "".join(f"1\t{i}\t{i + 1}\t{a}\t{b}\n" for i, (a, b) in enumerate(pairs))
        (folder / f"{split}.tsv").write_text(MRPC_HEADER + rows, encoding="utf-8")


def test_overlap_score_spans_stsb_scale():
    assert overlap_score("the cat sat", "the cat sat") == 5.0
    assert overlap_score("a b c d", "e f g h") == 0.0
    # Jaccard 0.5 -> (0.5 - 0.15) / 0.7 * 5 = 2.5
    assert overlap_score("a b c", "a b c d e f") == pytest.approx(2.5)
    assert overlap_score("The Cat, sat.", "the cat sat") == 5.0  # case and punctuation do not count


def test_build_writes_a_stsb_folder_the_glue_reader_loads(tmp_path):
    from dpbert.data.sources import load_glue_tsv

    _mrpc(tmp_path / "MRPC", [("He sat on the mat .", "He sat on a mat ."), ("One thing .", "Other words here .")])
    assert build(tmp_path, tmp_path / "out") == {"train": 2, "dev": 2}
    text = (tmp_path / "out" / "STS-B" / "dev.tsv").read_text()
    assert text.splitlines()[0].endswith("sentence1\tsentence2\tscore")
    loaded = load_glue_tsv("STS-B", tmp_path / "out")
    dev = loaded["dev"]
    # "he sat on the mat" vs "he sat on a mat": Jaccard 4/6 -> 3.690; no shared word -> 0
    assert [e.text_a for e in dev] == ["He sat on the mat .", "One thing ."]
    assert [e.label for e in dev] == pytest.approx([5.0 * (4 / 6 - 0.15) / 0.7, 0.0], abs=1e-3)


def test_build_refuses_a_folder_that_is_not_mrpc(tmp_path):
    (tmp_path / "MRPC").mkdir()
    (tmp_path / "MRPC" / "train.tsv").write_text("sentence\tlabel\nx\t1\n")
    (tmp_path / "MRPC" / "dev.tsv").write_text("sentence\tlabel\nx\t1\n")
    with pytest.raises(DataError, match="has no column"):
        build(tmp_path, tmp_path / "out")


def test_generated_pairs_spread_over_the_scale_and_repeat_by_seed():
    from dpbert.tools.overlap_regression import WORDS, generated_pairs, overlap_score

    pairs = generated_pairs(300, seed=4)
    assert pairs == generated_pairs(300, seed=4) and pairs != generated_pairs(300, seed=5)
    scores = [overlap_score(a, b) for a, b in pairs]
    assert min(scores) == 0.0 and max(scores) == 5.0 and 1.5 < sum(scores) / len(scores) < 3.5
    assert all(len(a.split()) == len(set(a.split())) == 8 and set(a.split()) <= set(WORDS) for a, _ in pairs)
