"""A regression task in STS-B's shape built from real sentence pairs: the target is their word overlap.

    python -m dpbert.tools.overlap_regression --glue /path/to/glue_data --out /tmp/overlap
    snakemake --cores 2 --configfile workflow/config/minilm.yaml --config profile=overlap \
        data='{"source": "glue_tsv", "data_dir": "/tmp/overlap"}' tasks='[STS-B]' methods='{"deebert": null}'

(DeeBERT has no regression exit, so a regression-only run drops it.)

Why: checking that every method which covers regression learns it needs a regression task on real
text, and a user (or a development machine) may have MRPC but not STS-B. Each MRPC pair keeps its
sentences; its score is 5 x the word-set overlap (Jaccard, lower-cased alphanumeric words) rescaled
from [0.15, 0.85] to [0, 5] and clipped, which spreads the scores like STS-B's (MRPC train: mean 2.6,
std 1.2). The task is easy for a model that compares words and says nothing about semantic
similarity: it is a test that a method can learn a regression target, not a benchmark. The output
folder holds ``STS-B/train.tsv`` and ``STS-B/dev.tsv`` in the GLUE download's STS-B layout.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

LOW, HIGH = 0.15, 0.85
"""The overlap range mapped onto STS-B's 0-5 scale (below LOW: 0, above HIGH: 5)."""

STSB_HEADER = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2",
               "score"]


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def overlap_score(a: str, b: str) -> float:
    """5 x the two sentences' word-set Jaccard overlap rescaled from [LOW, HIGH] to [0, 5], clipped."""
    wa, wb = words(a), words(b)
    jaccard = len(wa & wb) / max(1, len(wa | wb))
    return 5.0 * min(1.0, max(0.0, (jaccard - LOW) / (HIGH - LOW)))


def write_stsb(pairs: list[tuple[str, str]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("\t".join(STSB_HEADER) + "\n")
        for i, (a, b) in enumerate(pairs):
            fh.write("\t".join([str(i), "overlap", "mrpc", "-", str(i), "none", "none", a, b,
                                f"{overlap_score(a, b):.3f}"]) + "\n")


WORDS = ("the a man woman child dog cat bird horse car train city river house garden road market school "
         "music film book letter song game team doctor teacher farmer runs walks reads writes plays sings "
         "sees finds opens closes buys sells paints builds old new small large quiet loud green red blue "
         "early late slowly quickly near under over after before today").split()
"""English words MiniLM's vocabulary holds whole: the vocabulary of :func:`generated_pairs`."""


def generated_pairs(n: int, seed: int, length: int = 8) -> list[tuple[str, str]]:
    """``n`` sentence pairs of ``length`` distinct words each, without any GLUE file: the second
    sentence keeps a random number (a quarter to all) of the first's words, in a shuffled order, and draws the
    rest afresh, so the overlap scores spread over 0-5. What the test suite runs every regression
    method on, with the pretrained backbone (real words, a task it can learn in a few dozen steps)."""
    import random

    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        a = rng.sample(WORDS, length)
        keep = rng.sample(a, rng.randint(length // 4, length))
        b = keep + rng.sample([w for w in WORDS if w not in a], length - len(keep))
        rng.shuffle(b)
        pairs.append((" ".join(a), " ".join(b)))
    return pairs


def build(glue: Path, out: Path) -> dict[str, int]:
    """Write ``out/STS-B/{train,dev}.tsv`` from the GLUE folder's ``MRPC/{train,dev}.tsv`` (read by the
    project's GLUE reader, with its errors); returns the row counts."""
    from dpbert.data.sources import load_glue_tsv

    splits = load_glue_tsv("MRPC", glue)
    counts = {}
    for split in ("train", "dev"):
        pairs = [(e.text_a, e.text_b) for e in splits[split]]
        write_stsb(pairs, out / "STS-B" / f"{split}.tsv")
        counts[split] = len(pairs)
    return counts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--glue", type=Path, required=True, help="a GLUE folder holding MRPC/train.tsv and MRPC/dev.tsv")
    ap.add_argument("--out", type=Path, required=True, help="folder to write STS-B/train.tsv and STS-B/dev.tsv into")
    args = ap.parse_args(argv)
    counts = build(args.glue, args.out)
    print(f"wrote {args.out / 'STS-B'}: {counts['train']} train, {counts['dev']} dev pairs")


if __name__ == "__main__":
    main()
