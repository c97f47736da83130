"""Does skipping half the layers halve the batch-1 latency? Measured, method by method.

    python -m dpbert.tools.speedup_bench --shape bert-base      (or --shape demo; --device cuda on a GPU)
    python -m dpbert.tools.speedup_bench --shape bert-base --stability 3   (one latency's spread over 3 measurements)

Each method runs a random-weight model whose decisions are pinned so that exactly 6 of 12 layers
execute on every input (``bert_cut`` runs the first 6; planners alternate; DeeBERT's off-ramps are
certain only at layer 6; PABEE's predictions never change, so patience 5 exits at layer 6; BERxiT's
LTE unit reads a low error only at layer 6; DACT's halting rule first holds at layer 6). Its latency speed-up over the plain
Hugging Face forward, divided by its layer speed-up (2.0), is the share of the skipped layers' time
that the method really saves: 1.0 means the planners / exit heads cost nothing ("vs eng": the same
against the engine at full depth, the workflow's default reference). Every case is timed in the
same rounds as the HF forward, example by example; a speed-up is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dpbert.data.tasks import get_task
from dpbert.methods.registry import get_method, registered
from dpbert.model.method_model import MethodModel
from dpbert.run.latency import (
    describe_device,
    measure,
    measure_interleaved,
    paired_speedup,
)
from dpbert.tools.benchmodels import random_classifier, random_examples

TASK = get_task("SST-2")
CASE_ORDER = ("bert_cut", "dpbert", "deebert", "pabee", "berxit", "dact_bert")
"""The methods timed, in this order; any other registered method that pins itself follows."""


def run(shape: str, device: str, n_examples: int, repeats: int, warmup: int) -> list[dict]:
    """Every case and the HF forward timed in interleaved rounds (``measure_interleaved``)."""
    clf = random_classifier(shape).to(device)
    examples = random_examples(n_examples, clf.config.vocab_size, device=device)
    n = clf.config.num_hidden_layers
    half = n // 2
    engine_model = MethodModel(clf).eval()

    def engine_forward(ex):
        out = engine_model.engine.run(ex["input_ids"], ex["attention_mask"], ex["token_type_ids"])
        return engine_model.final_head(out.hidden, ex["attention_mask"])

    cases = {"engine, all layers": (engine_forward, n)}
    names = list(CASE_ORDER) + sorted(set(registered()) - set(CASE_ORDER))
    for name in names:  # every method that can pin its decisions to k layers (Method.pinned)
        method = get_method(name)(None, TASK)
        pinned = method.pinned(clf, half)
        if pinned is None:
            continue
        model = pinned.model.to(device)
        executed = {len(method.predict_one(model, ex, pinned.knob).executed) for ex in examples}
        if executed != {half}:
            raise AssertionError(f"{name} pinned to {half} layers executed {sorted(executed)}")
        forward = (lambda m, mt, k: (lambda ex: mt.predict_one(m, ex, k)))(model, method, pinned.knob)
        cases[f"{pinned.name or method.display_name} ({pinned.label})"] = (forward, half)
    forwards = [lambda ex: clf(**ex).logits] + [f for f, _ in cases.values()]
    hf, *lats = measure_interleaved(forwards, examples, warmup=warmup, repeats=repeats, device=device)
    engine = lats[0]  # the harness's reference (latency.reference: engine)
    rows = []
    for (name, (_f, expected_layers)), lat in zip(cases.items(), lats):
        lat_speedup, speedup_spread = paired_speedup(hf, lat)
        over_engine, _ = paired_speedup(engine, lat)
        layer_speedup = n / expected_layers
        rows.append({"case": name, "shape": shape, "device": describe_device(device), "hf_ms": hf.median_ms,
                     "hf_spread": hf.spread, "ms": lat.median_ms, "spread": lat.spread,
                     "latency_speedup": lat_speedup, "speedup_spread": speedup_spread,
                     "layer_speedup": layer_speedup, "ratio": lat_speedup / layer_speedup,
                     "ratio_vs_engine": over_engine / layer_speedup})
    return rows


def stability(shape: str, device: str, n_examples: int, repeats: int, warmup: int, measurements: int) -> list[float]:
    """The latency protocol on the HF forward, ``measurements`` times in one process: the latencies it
    gives (each the median of ``repeats`` passes). Their spread is how far one latency can be trusted."""
    clf = random_classifier(shape).to(device)
    examples = random_examples(n_examples, clf.config.vocab_size, device=device)
    return [measure(lambda ex: clf(**ex).logits, examples, warmup=warmup, repeats=repeats, device=device).median_ms
            for _ in range(measurements)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="bert-base", choices=["bert-base", "demo"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--examples", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--stability", type=int, default=0, metavar="N",
                    help="instead: run the latency protocol N times on the HF forward and print the spread")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.stability:
        lats = stability(args.shape, args.device, args.examples, args.repeats, args.warmup, args.stability)
        spread = (max(lats) - min(lats)) / sorted(lats)[len(lats) // 2]
        print(f"HF forward, {args.shape} shape, {args.examples} examples x {args.repeats} passes, measured "
              f"{len(lats)} times: {', '.join(f'{x:.2f}' for x in lats)} ms; spread {100 * spread:.1f}%")
        return
    rows = run(args.shape, args.device, args.examples, args.repeats, args.warmup)
    print(f"{'case':28s} {'ms':>8s} {'spread':>7s} {'lat x':>6s} {'spread':>7s} {'layer x':>7s} {'ratio':>6s} "
          f"{'vs eng':>6s}   (HF forward {rows[0]['hf_ms']:.3f} ms, spread {100 * rows[0]['hf_spread']:.1f}%, "
          f"{rows[0]['device']})")
    for r in rows:
        print(f"{r['case']:28s} {r['ms']:8.3f} {100 * r['spread']:6.1f}% {r['latency_speedup']:6.3f} "
              f"{100 * r['speedup_spread']:6.1f}% {r['layer_speedup']:7.2f} {r['ratio']:6.3f} {r['ratio_vs_engine']:6.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
