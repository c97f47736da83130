"""Does the demo's synthetic data grade difficulty by depth? Measure it.

    python -m dpbert.tools.synthetic_check                      # every task of the demo config
    python -m dpbert.tools.synthetic_check --tasks SST-2 RTE    # some tasks
    python -m dpbert.tools.synthetic_check --json out.json      # also write the numbers

Per task: fine-tune BERT-base exactly as the demo's stage 1 does (``BertBase.train`` with the
config's ``model``, ``training.finetune`` and ``data.synthetic_train/dev``, the first of its
``seeds``), then score the dev split(s) at batch size 1 with that model cut after k layers
(``bert_cut`` in ``baselines/truncated.py``: the first k layers of the fine-tuned model and its own
head, nothing retrained; k = 12 is BERT-base itself). Prints the best constant prediction's score
("majority"), BERT-base and the cut model by k with bootstrap standard errors, and accuracy on the easy and the hard examples
(``Example.kind``; Spearman for STS-B), with and without truncation.

One thread, one training at a time (the machine is shared); about 15-25 s a task on the demo's
two-core machine. Nothing is written outside a temporary folder unless ``--json`` is given.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CONFIG = Path("workflow") / "config" / "config.yaml"  # from the checkout's root
DEFAULT_KS = (9, 8, 7, 6)


def majority_score(metric: str, labels: list, num_labels: int) -> float:
    """The best score a constant prediction gets on these labels (regression: a constant has no
    correlation, 0 by the metrics' convention)."""
    from dpbert.run.metrics import glue_metrics

    if num_labels == 1:
        return 0.0
    return max(glue_metrics(metric, [c] * len(labels), labels)["score"] for c in range(num_labels))


def part_score(is_regression: bool, preds: list, labels: list) -> float:
    """Accuracy x100 (classification) or Spearman x100 (regression) on a subset of examples."""
    from dpbert.run.metrics import spearman

    if not preds:
        return float("nan")
    if is_regression:
        return 100.0 * spearman(preds, labels)
    return 100.0 * float(np.mean(np.asarray(preds) == np.asarray(labels)))


def check_task(task: str, cfg: dict[str, Any], ks: list[int], workdir: Path, log: logging.Logger,
               by_kind: bool = False) -> dict[str, Any]:
    import torch

    from dpbert.data.encoding import encode_examples
    from dpbert.data.sources import load_task
    from dpbert.data.tasks import get_task
    from dpbert.methods.interface import TrainContext
    from dpbert.methods.registry import build_method
    from dpbert.model.sources import ModelSource, load_tokenizer
    from dpbert.model.training import seed_everything
    from dpbert.reporting.uncertainty import bootstrap_se
    from dpbert.run.metrics import glue_metrics
    from dpbert.run.sweep import predict_split

    spec = get_task(task)
    data_cfg = cfg["data"]
    seed = int(cfg.get("seeds", [1])[0])
    splits = load_task(spec.name, "synthetic", seed=int(data_cfg.get("seed", 0)),
                       synthetic_train=int(data_cfg["synthetic_train"]), synthetic_dev=int(data_cfg["synthetic_dev"]))
    source = ModelSource.from_config(cfg["model"])
    tokenizer = load_tokenizer(source)
    enc = {name: encode_examples(exs, tokenizer, source.max_length, spec.is_regression) for name, exs in splits.items()}
    n_layers = int((cfg["model"].get("small") or {}).get("num_hidden_layers", 12))
    depths = sorted({n_layers, *ks}, reverse=True)

    bert = build_method("bert", cfg["methods"].get("bert", {}), spec)
    out_dir = workdir / spec.name
    ctx = TrainContext(task=spec, train=enc["train"], dev=enc[spec.dev_splits[0]], finetuned_dir=None,
                       out_dir=out_dir, seed=seed, settings=cfg["training"], model_source=source,
                       device="cpu", log=log)
    t0 = time.perf_counter()
    seed_everything(seed)
    bert.train(ctx)
    train_s = time.perf_counter() - t0
    truncated = build_method("bert_cut", {"layers": depths}, spec)  # the stage-1 model, cut after k layers
    model = truncated.load(out_dir / "main")
    t0 = time.perf_counter()
    res: dict[str, Any] = {"task": spec.name, "metric": spec.metric, "train_s": round(train_s, 1),
                           "n_train": len(enc["train"]), "splits": {}}
    with torch.inference_mode():
        for split in spec.dev_splits:
            exs, labels = splits[split], enc[split].labels
            kinds = [e.kind.split(":")[0] for e in exs]
            per_k = dict(zip(depths, (p for p, _ in predict_split(truncated, model, enc[split], depths, "cpu"))))
            row: dict[str, Any] = {"n": len(exs), "majority": majority_score(spec.metric, labels, spec.num_labels),
                                   "easy_share": kinds.count("easy") / len(kinds), "score": {}, "se": {},
                                   "easy": {}, "hard": {}}
            row["metrics"] = {}
            for k, preds in per_k.items():
                row["metrics"][k] = glue_metrics(spec.metric, preds, labels)
                row["score"][k] = row["metrics"][k]["score"]
                row["se"][k] = bootstrap_se(spec.metric, preds, labels, n_boot=300, key=f"{spec.name}|{split}")
                for part in ("easy", "hard"):
                    sub = [i for i, kd in enumerate(kinds) if kd == part]
                    row[part][k] = part_score(spec.is_regression, [preds[i] for i in sub], [labels[i] for i in sub])
            if by_kind:
                row["kinds"] = {}
                for kind in sorted({e.kind for e in exs}):
                    sub = [i for i, e in enumerate(exs) if e.kind == kind]
                    row["kinds"][kind] = {k: part_score(spec.is_regression, [per_k[k][i] for i in sub],
                                                        [labels[i] for i in sub]) for k in depths}
                    row["kinds"][kind]["n"] = len(sub)
            res["splits"][split] = row
    res["score_s"] = round(time.perf_counter() - t0, 1)
    return res


def format_report(results: list[dict[str, Any]], ks: list[int], n_layers: int = 12) -> str:
    """The table printed by the command: one line per dev split, then the averages."""
    depths = [n_layers] + [k for k in ks if k != n_layers]
    head = (f"{'task/split':<22} {'n':>4} {'easy%':>5} {'major':>6} {'BERT-base':>11} "
            + " ".join(f"{f'{k}L':>11}" for k in depths[1:])
            + f" | {'easy 12L/' + str(depths[-1]) + 'L':>14} {'hard 12L/' + str(depths[-1]) + 'L':>14} {'train s':>7}")
    lines = [head, "-" * len(head)]
    gaps, lifts, by_depth = [], [], {k: [] for k in depths}
    for r in results:
        for split, s in r["splits"].items():
            name = r["task"] if len(r["splits"]) == 1 else f"{r['task']}/{split.replace('dev_', '')}"
            cells = " ".join(f"{s['score'][k]:6.1f}±{s['se'][k]:<4.1f}" for k in depths)
            lo = depths[-1]
            lines.append(f"{name:<22} {s['n']:>4} {100 * s['easy_share']:>5.0f} {s['majority']:>6.1f} {cells} | "
                         f"{s['easy'][n_layers]:>6.1f}/{s['easy'][lo]:<6.1f} {s['hard'][n_layers]:>6.1f}/{s['hard'][lo]:<6.1f}"
                         f" {r['train_s']:>7.1f}")
            if "spearman" in s.get("metrics", {}).get(n_layers, {}):
                lines.append("    (score = mean of Pearson and Spearman; Spearman: "
                             + ", ".join(f"{k}L {s['metrics'][k]['spearman']:.1f}" for k in depths) + ")")
        # per task (MNLI once, as mean(m, mm)) for the averages
        sc = {k: float(np.mean([s["score"][k] for s in r["splits"].values()])) for k in depths}
        for k in depths:
            by_depth[k].append(sc[k])
        maj = float(np.mean([s["majority"] for s in r["splits"].values()]))
        lifts.append((r["task"], sc[n_layers] - maj))
        gaps.append(sc[n_layers] - sc[depths[-1]])
        for s in r["splits"].values():
            for kind, v in sorted(s.get("kinds", {}).items()):
                lines.append(f"    {kind:<30} n={v['n']:<4} " + " ".join(f"{k}L {v[k]:5.1f}" for k in depths))
    lines.append("-" * len(head))
    lines.append("average over tasks (MNLI once): " + ", ".join(f"{k}L {np.mean(by_depth[k]):.1f}" for k in depths)
                 + f"; BERT-base - {depths[-1]}L = {np.mean(gaps):.1f}")
    lines.append("BERT-base above majority: " + ", ".join(f"{t} {v:+.1f}" for t, v in lifts))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch
    import yaml

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(DEFAULT_CONFIG), help="a profile file (default: the demo's)")
    ap.add_argument("--tasks", nargs="*", help="default: the config's tasks")
    ap.add_argument("--ks", nargs="*", type=int, default=list(DEFAULT_KS), help="truncation depths (default 9 8 7 6)")
    ap.add_argument("--train", type=int, help="override data.synthetic_train")
    ap.add_argument("--dev", type=int, help="override data.synthetic_dev")
    ap.add_argument("--seed", type=int, help="training seed (default: the config's first seed)")
    ap.add_argument("--data-seed", type=int, help="override data.seed (the generator's seed)")
    ap.add_argument("--lr", type=float, help="override training.finetune.lr")
    ap.add_argument("--epochs", type=float, help="override training.finetune.epochs")
    ap.add_argument("--by-kind", action="store_true", help="also print accuracy per example kind")
    ap.add_argument("--json", help="write the numbers to this file")
    args = ap.parse_args(argv)

    os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars in the printed table
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log = logging.getLogger("dpbert.tools.synthetic_check")
    cfg = yaml.safe_load(Path(args.config).read_text())
    if cfg.get("data", {}).get("source", "synthetic") != "synthetic" or cfg.get("model", {}).get("source") != "small":
        print("synthetic_check measures the synthetic demo data with the small backbone; "
              f"{args.config} uses data.source={cfg['data'].get('source')!r}, model.source={cfg['model'].get('source')!r}.",
              file=sys.stderr)
        return 2
    if args.train:
        cfg["data"]["synthetic_train"] = args.train
    if args.dev:
        cfg["data"]["synthetic_dev"] = args.dev
    if args.seed is not None:
        cfg["seeds"] = [args.seed]
    if args.data_seed is not None:
        cfg["data"]["seed"] = args.data_seed
    for key in ("lr", "epochs"):
        if getattr(args, key) is not None:
            cfg["training"]["finetune"][key] = getattr(args, key)
    tasks = args.tasks or list(cfg["tasks"])
    n_layers = int((cfg["model"].get("small") or {}).get("num_hidden_layers", 12))
    ks = [k for k in args.ks if 1 <= k <= n_layers]
    results = []
    with tempfile.TemporaryDirectory(prefix="dpbert-synthetic-check-") as tmp:
        for task in tasks:
            results.append(check_task(task, cfg, ks, Path(tmp), log, by_kind=args.by_kind))
            print(f"[{task}: trained in {results[-1]['train_s']:.0f} s, scored in {results[-1]['score_s']:.0f} s]",
                  file=sys.stderr, flush=True)
    print(f"data: {cfg['data']['synthetic_train']} train / {cfg['data']['synthetic_dev']} dev per split; "
          f"finetune {cfg['training']['finetune']}; scores x100 ± bootstrap SE; easy/hard: accuracy (STS-B: Spearman)")
    print(format_report(results, ks, n_layers))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
