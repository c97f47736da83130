"""Does skipping half the layers halve the batch-1 latency? Measured, method by method.

    python -m dpbert.tools.speedup_bench --shape bert-base      (or --shape demo; --device cuda on a GPU)
    python -m dpbert.tools.speedup_bench --shape bert-base --stability 3   (one latency's spread over 3 measurements)

Each method runs a random-weight model whose decisions are pinned so that exactly 6 of 12 layers
execute on every input (planners alternate; DeeBERT's off-ramps are certain only at layer 6; PABEE's
predictions never change, so patience 5 exits at layer 6; BERxiT's LTE unit reads a low error only
at layer 6; DACT's halting rule first holds at layer 6). Its latency speed-up over the plain
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
from dpbert.methods.registry import get_method
from dpbert.model.method_model import MethodModel
from dpbert.run.latency import (
    describe_device,
    measure,
    measure_interleaved,
    paired_speedup,
)
from dpbert.tools.benchmodels import random_classifier, random_examples

TASK = get_task("SST-2")


def _dpbert_alternating(clf) -> tuple[MethodModel, object, float]:
    from dpbert.methods.dpbert import Planners

    n, h = clf.config.num_hidden_layers, clf.config.hidden_size
    planners = Planners(n, h)
    for i, gate in enumerate(planners.gates):  # run layers 0, 2, 4, ...: p = sigmoid(+-20)
        torch.nn.init.zeros_(gate.weight)
        torch.nn.init.constant_(gate.bias, 20.0 if i % 2 == 0 else -20.0)
    return MethodModel(clf, planners).eval(), get_method("dpbert")(None, TASK), 0.5


def _deebert_exit_at(clf, k: int) -> tuple[MethodModel, object, float]:
    from baselines._early_exit import ExitModules, new_ramps

    ramps = new_ramps(clf)
    for i, lin in enumerate(ramps.classifiers):  # uniform (entropy ln 2) everywhere but layer k
        torch.nn.init.zeros_(lin.weight)
        with torch.no_grad():
            lin.bias.copy_(torch.tensor([20.0, -20.0]) if i == k - 1 else torch.zeros(2))
    return MethodModel(clf, ExitModules(ramps)).eval(), get_method("deebert")(None, TASK), 0.3


def _pabee_patience(clf, k: int) -> tuple[MethodModel, object, float]:
    from baselines._early_exit import ExitModules, new_ramps

    ramps = new_ramps(clf, own_poolers=False)
    for lin in ramps.classifiers:  # constant prediction: the patience counter grows every layer
        torch.nn.init.zeros_(lin.weight)
        with torch.no_grad():
            lin.bias.copy_(torch.tensor([1.0, 0.0]))
    return MethodModel(clf, ExitModules(ramps)).eval(), get_method("pabee")(None, TASK), float(k - 1)


def _berxit_exit_at(clf, k: int) -> tuple[MethodModel, object, float]:
    """Off-ramp k's pooler gives -1 everywhere, the others +1; the shared LTE unit reads that as error
    ~0 at layer k and ~1 elsewhere, so threshold 0.5 exits at layer k."""
    from baselines._early_exit import ExitModules, new_ramps
    from baselines.berxit import LTE

    h = clf.config.hidden_size
    ramps = new_ramps(clf)
    lte = LTE(h)
    with torch.no_grad():
        for i, pooler in enumerate(ramps.poolers):
            pooler.dense.weight.zero_()
            pooler.dense.bias.fill_(-20.0 if i == k - 1 else 20.0)
        lte.fc.weight.fill_(20.0 / h)
        lte.fc.bias.zero_()
    return MethodModel(clf, ExitModules(ramps, lte=lte)).eval(), get_method("berxit")(None, TASK), 0.5


def _dact_halt_at(clf, k: int) -> tuple[MethodModel, object, float]:
    """Every exit certain of one class (a = [1, 0]) and a constant continue-probability h, so p_n = h^n;
    h is chosen so that (1 - p_n)^(N - n) > p_n (N - n), the halting rule, first holds at n = k."""
    from baselines._early_exit import ExitModules, new_ramps
    from baselines.dact_bert import HaltingGate

    n_layers, hidden = clf.config.num_hidden_layers, clf.config.hidden_size

    def halts(h: float, n: int) -> bool:
        return (1 - h ** n) ** (n_layers - n) - h ** n * (n_layers - n) > 0

    lo, hi = 0.0, 1.0  # halts(h, k) holds for small h; find the h where it stops holding, and step below it
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if halts(mid, k) else (lo, mid)
    h = lo * (1 - 1e-6)
    assert halts(h, k) and not halts(h, k - 1), h
    ramps = new_ramps(clf)
    gate = HaltingGate(hidden)
    with torch.no_grad():
        for lin in [*ramps.classifiers, clf.classifier]:
            lin.weight.zero_()
            lin.bias.copy_(torch.tensor([30.0, -30.0]))
        gate.gate.weight.zero_()
        gate.gate.bias.fill_(float(torch.logit(torch.tensor(1 - h, dtype=torch.float64))))
    return MethodModel(clf, ExitModules(ramps, halting=gate)).eval(), get_method("dact_bert")(None, TASK), 0.0


def _truncated(clf, k: int) -> tuple[MethodModel, object, float]:
    return MethodModel(clf).eval(), get_method("bert_truncated")(None, TASK), float(k)


def run(shape: str, device: str, n_examples: int, repeats: int, warmup: int) -> list[dict]:
    """Every case and the HF forward timed in interleaved rounds (``measure_interleaved``)."""
    clf = random_classifier(shape).to(device)
    examples = random_examples(n_examples, clf.config.vocab_size, device=device)
    n = clf.config.num_hidden_layers
    half = n // 2
    engine_model = MethodModel(clf).eval()

    def engine_forward(ex):
        out = engine_model.engine.run(ex["input_ids"], ex["attention_mask"], ex["token_type_ids"])
        return engine_model.final_head(out.hidden)

    cases = {
        "engine, all layers": (lambda: (None, None, None), engine_forward, n),
        "BERT-kL (first 6)": (lambda: _truncated(clf, half), None, half),
        "DPBERT (alternate layers)": (lambda: _dpbert_alternating(clf), None, half),
        "DeeBERT (exit at 6)": (lambda: _deebert_exit_at(clf, half), None, half),
        "PABEE (patience 5)": (lambda: _pabee_patience(clf, half), None, half),
        "BERxiT (exit at 6)": (lambda: _berxit_exit_at(clf, half), None, half),
        "DACT-BERT (halts at 6)": (lambda: _dact_halt_at(clf, half), None, half),
    }
    forwards = [lambda ex: clf(**ex).logits]
    for name, (build, forward, expected_layers) in cases.items():
        model, method, knob = build()
        if forward is None:
            model = model.to(device)
            executed = {len(method.predict_one(model, ex, knob).executed) for ex in examples}
            assert executed == {expected_layers}, (name, executed)
            forward = (lambda m, mt, k: (lambda ex: mt.predict_one(m, ex, k)))(model, method, knob)
        forwards.append(forward)
    hf, *lats = measure_interleaved(forwards, examples, warmup=warmup, repeats=repeats, device=device)
    engine = lats[0]  # the harness's reference (latency.reference: engine)
    rows = []
    for (name, (_b, _f, expected_layers)), lat in zip(cases.items(), lats):
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
