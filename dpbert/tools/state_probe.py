"""How much each candidate decision state varies with the input, layer by layer.

A planner or off-ramp can only be input-dependent if the state it reads is. For every layer boundary
(the embeddings' output, then after each layer) this measures, over dev examples at batch size 1,
the relative spread ||std over inputs|| / ||mean over inputs|| of the [CLS] state and of the masked
token mean: the numbers behind a method's ``state`` key (dpbert.model.engine.STATE_KINDS).

    python -m dpbert.tools.state_probe work/minilm/models/CoLA/bert/1/main work/minilm/data/CoLA.pt
"""

from __future__ import annotations

import argparse
import json

import torch

from dpbert.model.engine import STATE_KINDS, token_state


def relative_spread(states: torch.Tensor) -> float:
    """||std over rows|| / ||mean over rows|| of a (n, hidden) matrix: 0 when every input gives the same vector."""
    mean = states.mean(0)
    return float(states.std(0).norm() / mean.norm().clamp_min(1e-12))


@torch.inference_mode()
def state_spread(model, split, n: int = 100) -> dict[str, list[float]]:
    """Per state kind, the relative spread before layer 1 .. N and after layer N (N + 1 values)."""
    rows: dict[str, list[list[torch.Tensor]]] = {k: [] for k in STATE_KINDS}
    for i in range(min(n, len(split))):
        ex = split.example(i)
        hidden, mask = model.engine.embed(ex["input_ids"], ex["attention_mask"], ex["token_type_ids"])
        states = [hidden]
        for layer in range(model.n_layers):
            hidden = model.engine.layer(layer, hidden, mask)
            states.append(hidden)
        for kind in STATE_KINDS:
            rows[kind].append([token_state(h, ex["attention_mask"], kind)[0] for h in states])
    return {kind: [relative_spread(torch.stack([r[j] for r in per_ex])) for j in range(model.n_layers + 1)]
            for kind, per_ex in rows.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a BERT-base model folder (…/models/<task>/bert/<seed>/main)")
    parser.add_argument("data", help="the prepared task file (…/data/<task>.pt)")
    parser.add_argument("--examples", type=int, default=100)
    args = parser.parse_args(argv)
    from dpbert.data.tasks import get_task
    from dpbert.methods.bert_base import BertBase
    from dpbert.run.prepare import load_prepared

    prepared = load_prepared(args.data)
    spec = get_task(prepared.task)
    model = BertBase(None, spec).load(args.model)
    spread = state_spread(model, prepared.splits[spec.dev_splits[0]], args.examples)
    print(json.dumps({k: [round(100 * v, 1) for v in vals] for k, vals in spread.items()}))


if __name__ == "__main__":
    main()
