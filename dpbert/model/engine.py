"""The one layer loop every method runs through.

A method never iterates over ``encoder.layer`` itself: it asks the engine to run the
embeddings and a chosen sequence of layers, and steers the loop with two callbacks:

* ``plan(i, hidden)`` is asked *before* layer ``i``. ``True`` runs the layer, ``False``
  skips it (no attention, no FFN: the layer module is not called), a tensor ``g`` of shape
  ``(batch,)`` mixes ``g * T_i(h) + (1 - g) * h`` (soft gates and sampled actions in training).
* ``after(i, hidden)`` is asked *after* layer ``i`` ran; returning ``True`` stops the loop
  (early exit): no later layer is computed.

``run_rows`` is the same loop for a padded batch whose rows take their own paths (serving,
``Method.predict_batch``): ``plan`` and ``leave`` answer per row, the rows that run a layer go through it
as one batch, and a row that leaves takes its state with it while the rest continue as a smaller batch.
``per_rows`` runs a decision or head written for a sub-batch either once on it (fast) or row by row, each
row alone on its own tokens (exact: what ``predict_one`` computes, bit for bit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from transformers.masking_utils import create_bidirectional_mask

PlanFn = Callable[[int, Tensor], "bool | Tensor"]
AfterFn = Callable[[int, Tensor], bool]
# run_rows: (layer i, the sub-batch's hidden (rows, width, hidden), its 0/1 mask (rows, width), the batch rows
# it holds) -> one bool per row
RowFn = Callable[[int, Tensor, Tensor, list[int]], "Sequence[bool] | Tensor"]
# per_rows: (a sub-batch's hidden, its mask, the batch rows it holds) -> one value per row, in that order
SubBatchFn = Callable[[Tensor, Tensor, list[int]], Sequence]


@dataclass
class EngineOutput:
    hidden: Tensor  # (batch, seq, hidden) after the last visited layer
    executed: list[int] = field(default_factory=list)  # 0-based indices of layers that ran
    states: list[Tensor] = field(default_factory=list)  # hidden after each visited layer, if kept


@dataclass
class RowsOutput:
    """``run_rows``: per row of the batch, its state after its last layer on its own tokens, (1, length,
    hidden), and the 0-based layers it ran; and the sub-batch still in the batch after the last layer (its
    hidden, mask and batch rows, in that order: what a head reads at once), empty if every row left."""

    states: list[Tensor]
    executed: list[list[int]]
    hidden: Tensor | None = None
    mask: Tensor | None = None
    rows: list[int] = field(default_factory=list)


class LayerwiseBackbone(nn.Module):
    """Embeddings + any subsequence of the layers of a Hugging Face ``BertModel``."""

    def __init__(self, bert: nn.Module):
        super().__init__()
        self.bert = bert
        self._fast_calls: list[int] | None = None  # set by count_layer_calls

    @property
    def n_layers(self) -> int:
        return len(self.bert.encoder.layer)

    @property
    def hidden_size(self) -> int:
        return self.bert.config.hidden_size

    def embed(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        hidden = self.bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        mask = create_bidirectional_mask(
            config=self.bert.config, inputs_embeds=hidden, attention_mask=attention_mask
        )
        return hidden, mask

    def layer_mask(self, hidden: Tensor, attention_mask: Tensor | None) -> Tensor | None:
        """The attention mask a layer takes for a (sub-)batch of ``hidden`` and its (batch, width) 0/1 mask
        (None where no row is padded, as at batch size 1)."""
        return create_bidirectional_mask(config=self.bert.config, inputs_embeds=hidden, attention_mask=attention_mask)

    def layer(self, i: int, hidden: Tensor, mask: Tensor | None) -> Tensor:
        module = self.bert.encoder.layer[i]
        if not module.training and _fast_layer_ok(self.bert.config):
            if self._fast_calls is not None:  # count_layer_calls: the module's own hooks do not see this path
                self._fast_calls[i] += 1
            return _bert_layer_inference(module, hidden, mask)
        return module(hidden, mask)

    @property
    def head_state(self) -> str:
        """What BERT's head reads after the last layer: ``cls`` (BERT's own) or ``mean`` (``model.head_state``)."""
        return getattr(self.bert.config, "head_state", "cls")

    def pool(self, hidden: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """BERT's pooler on the state its head reads (the input of every classification head): the [CLS]
        state, or with ``head_state`` mean the masked token mean. A padded batch needs ``attention_mask``
        for the mean; at batch size 1 (no padding) the mean over all tokens is the same."""
        kind = self.head_state
        if kind == "cls":
            if self.bert.pooler is None:
                return hidden[:, 0]
            return self.bert.pooler(hidden)
        if attention_mask is None and hidden.shape[0] > 1:
            raise ValueError("this model's head reads the token mean (model.head_state: mean), so a batch of "
                             f"{hidden.shape[0]} examples needs its attention mask: pass it to final_head / pool.")
        return self.pool_state(token_state(hidden, attention_mask, kind))

    def pool_state(self, state: Tensor) -> Tensor:
        """BERT's pooler (dense + tanh) applied to a (batch, hidden) state vector; no pooler: the state itself."""
        if self.bert.pooler is None:
            return state
        return self.bert.pooler.activation(self.bert.pooler.dense(state))

    def run(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        *,
        layers: Sequence[int] | None = None,
        plan: PlanFn | None = None,
        after: AfterFn | None = None,
        keep_states: bool = False,
    ) -> EngineOutput:
        hidden, mask = self.embed(input_ids, attention_mask, token_type_ids)
        out = EngineOutput(hidden=hidden)
        for i in range(self.n_layers) if layers is None else layers:
            decision = True if plan is None else plan(i, hidden)
            if decision is True:
                hidden = self.layer(i, hidden, mask)
                out.executed.append(i)
            elif isinstance(decision, Tensor):
                gate = decision.to(hidden.dtype).view(-1, 1, 1)
                hidden = gate * self.layer(i, hidden, mask) + (1 - gate) * hidden
                out.executed.append(i)
            elif decision is not False:
                raise TypeError(f"plan() must return True, False or a tensor, got {decision!r}")
            if keep_states:
                out.states.append(hidden)
            if after is not None and decision is not False and after(i, hidden):
                break
        out.hidden = hidden
        return out

    def run_rows(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        *,
        layers: Sequence[int] | None = None,
        plan: RowFn | None = None,
        leave: RowFn | None = None,
    ) -> RowsOutput:
        """A right-padded batch whose rows decide for themselves (``Method.predict_batch``).

        ``plan(i, hidden, mask, rows)`` is asked before layer ``i`` for the rows of the batch still in it
        (``mask``: their 0/1 attention mask, as wide as ``hidden``; ``rows``: their indices in the input
        batch, in ``hidden``'s order); its per-row ``True`` runs the layer: those
        rows are gathered, go through it as one batch trimmed to their own longest row, and are scattered
        back; the others carry their state forward unchanged. None: every row runs every layer.
        ``leave(i, hidden, mask, rows)`` is asked after layer ``i`` for the rows that ran it; a row it answers
        ``True`` for leaves the batch with its state (no later layer runs for it), and the rest continue as
        a smaller batch, again trimmed to their longest row (all-padding columns on the right dropped).
        A row's padding never reaches another row (attention masks the padded keys of each row)."""
        lengths = right_padded_lengths(attention_mask)
        hidden = self.bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        mask2d = attention_mask
        active = list(range(len(lengths)))
        states: list[Tensor | None] = [None] * len(lengths)
        executed: list[list[int]] = [[] for _ in lengths]
        masks: dict[tuple, Tensor | None] = {}  # (a sub-batch's batch rows, width) -> its layer mask
        for i in range(self.n_layers) if layers is None else layers:
            if not active:
                break
            run = ([True] * len(active) if plan is None
                   else _row_flags(plan(i, hidden, mask2d, list(active)), len(active), "plan"))
            ran = [k for k, flag in enumerate(run) if flag]
            if ran:
                hidden = self._run_subset(i, hidden, mask2d, ran, [lengths[active[k]] for k in ran], masks,
                                          tuple(active[k] for k in ran))
                for k in ran:
                    executed[active[k]].append(i)
            if leave is None or not ran:
                continue
            if len(ran) == len(active):
                sub, sub_mask = hidden, mask2d
            else:
                index = torch.tensor(ran, device=hidden.device)
                sub, sub_mask = hidden[index], mask2d[index]
            flags = _row_flags(leave(i, sub, sub_mask, [active[k] for k in ran]), len(ran), "leave")
            leaving = {ran[k] for k, flag in enumerate(flags) if flag}
            if not leaving:
                continue
            for k in leaving:
                states[active[k]] = hidden[k : k + 1, : lengths[active[k]]]
            keep = [k for k in range(len(active)) if k not in leaving]
            active = [active[k] for k in keep]
            if keep:
                width = max(lengths[r] for r in active)
                index = torch.tensor(keep, device=hidden.device)
                hidden, mask2d = hidden[index, :width], mask2d[index, :width]
        for k, r in enumerate(active):
            states[r] = hidden[k : k + 1, : lengths[r]]
        if not active:
            return RowsOutput(states, executed)  # type: ignore[arg-type]
        return RowsOutput(states, executed, hidden, mask2d, list(active))  # type: ignore[arg-type]

    def _run_subset(self, i: int, hidden: Tensor, mask2d: Tensor, ran: list[int], lengths: list[int],
                    masks: dict[tuple, Tensor | None], rows: tuple[int, ...]) -> Tensor:
        """``hidden`` after layer ``i`` ran for the rows ``ran`` (positions in ``hidden``; ``rows``: their
        batch rows), trimmed to their longest row; a new tensor (the old one, which rows that left may still
        view, is never written). The layer mask of a sub-batch is made once and kept in ``masks`` (the same
        rows at the same width take the same mask at every layer)."""
        width = max(lengths)

        def mask_of(sub: Tensor, sub_mask: Tensor) -> Tensor | None:
            key = (rows, width)
            if key not in masks:
                masks[key] = self.layer_mask(sub, sub_mask)
            return masks[key]

        if len(ran) == hidden.shape[0]:
            if width == hidden.shape[1]:
                return self.layer(i, hidden, mask_of(hidden, mask2d))
            sub, sub_mask = hidden[:, :width], mask2d[:, :width]
        else:
            index = torch.tensor(ran, device=hidden.device)
            sub, sub_mask = hidden[index, :width], mask2d[index, :width]
        new = self.layer(i, sub, mask_of(sub, sub_mask))
        out = hidden.clone()
        out[ran, :width] = new
        return out


def per_rows(fn: SubBatchFn, hidden: Tensor, mask: Tensor, rows: Sequence[int], exact: bool) -> list:
    """``fn`` (a decision or head written for a sub-batch: hidden (rows, width, H), its 0/1 mask, the batch
    rows it holds -> one value per row) on a padded sub-batch. ``exact=False``: once on the whole sub-batch
    (one product per layer; a mean-reading state averages each row over its mask). ``exact=True``: once per
    row, on the row alone trimmed to its own tokens (``hidden[k:k+1, :n_k]``), the call ``predict_one``
    makes: bit for bit its example's values (on CPU a (rows, H) product rounds differently from a (1, H)
    one in the last bits, which can move a tie). One implementation serves both (``Method.predict_batch``)."""
    rows = list(rows)
    if not exact:
        out = list(fn(hidden, mask, rows))
    else:
        out = []
        for k, (row, n) in enumerate(zip(rows, mask.sum(1).tolist())):
            out.extend(fn(hidden[k : k + 1, :n], mask[k : k + 1, :n], [row]))
    if len(out) != len(rows):
        raise ValueError(f"per_rows: the function must answer once per row of its sub-batch ({len(rows)}), "
                         f"got {len(out)}")
    return out


def right_padded_lengths(attention_mask: Tensor) -> list[int]:
    """Each row's length in a right-padded batch (its mask's ones, then zeros), or an error: ``run_rows``
    trims a batch to its longest row by dropping columns on the right."""
    lengths = attention_mask.sum(1)
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    if not torch.equal(attention_mask.bool(), positions.unsqueeze(0) < lengths.unsqueeze(1)):
        raise ValueError("run_rows takes a right-padded batch (each row's attention mask: ones, then zeros, as "
                         "EncodedSplit.batch pads), but this mask has padding before a token; pad on the right.")
    return lengths.tolist()


def _row_flags(flags, n: int, what: str) -> list[bool]:
    flags = flags.tolist() if isinstance(flags, Tensor) else list(flags)
    if len(flags) != n:
        raise ValueError(f"run_rows: {what}() must answer once per row it is asked about ({n}), got {len(flags)}")
    return [bool(f) for f in flags]


def _fast_layer_ok(config) -> bool:
    """The inference path below computes exactly what Hugging Face's BertLayer computes for this config:
    SDPA attention, GELU, an encoder (no cross-attention, no cache)."""
    return (getattr(config, "_attn_implementation", None) == "sdpa" and config.hidden_act == "gelu"
            and not config.is_decoder and not getattr(config, "add_cross_attention", False))


def _bert_layer_inference(layer: nn.Module, x: Tensor, mask: Tensor | None) -> Tensor:
    """One BertLayer in eval mode as the same functional calls its modules make (dropout is the identity
    in eval), without the per-module Python dispatch: bit-identical outputs (tests/model/test_engine.py),
    ~40% less time per layer at batch size 1 on the demo model, where that dispatch dominates a layer."""
    att = layer.attention.self
    b, t, h = x.shape
    shape = (b, t, att.num_attention_heads, att.attention_head_size)
    q = F.linear(x, att.query.weight, att.query.bias).view(shape).transpose(1, 2)
    k = F.linear(x, att.key.weight, att.key.bias).view(shape).transpose(1, 2)
    v = F.linear(x, att.value.weight, att.value.bias).view(shape).transpose(1, 2)
    ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=att.scaling).transpose(1, 2).reshape(b, t, h)
    out = layer.attention.output
    x = F.layer_norm(F.linear(ctx, out.dense.weight, out.dense.bias) + x, (h,), out.LayerNorm.weight,
                     out.LayerNorm.bias, out.LayerNorm.eps)
    inter = F.gelu(F.linear(x, layer.intermediate.dense.weight, layer.intermediate.dense.bias))
    out = layer.output
    return F.layer_norm(F.linear(inter, out.dense.weight, out.dense.bias) + x, (h,), out.LayerNorm.weight,
                        out.LayerNorm.bias, out.LayerNorm.eps)


def cls_state(hidden: Tensor) -> Tensor:
    """The [CLS] token's state: what BERT's own pooler reads."""
    return hidden[:, 0]


STATE_KINDS: tuple[str, ...] = ("cls", "mean")
"""What a planner, off-ramp or halting unit reads of the hidden states (a method's ``state`` key):
``cls``, the [CLS] token's state (the early-exit papers' choice, through BERT's pooler), or ``mean``,
the mean of the token states over the attention mask. On a backbone whose [CLS] state only carries
the input in its last layer (all-MiniLM-L6-v2, a mean-pooling sentence encoder) a [CLS]-reading
decision sees nearly the same vector for every input; see docs/methods.md, "The state a decision reads"."""


def check_state_kind(kind: str, where: str) -> str:
    if kind not in STATE_KINDS:
        raise ValueError(f"{where} is '{kind}', but the state a decision reads must be one of "
                         f"{', '.join(STATE_KINDS)}; fix the config entry.")
    return kind


def token_state(hidden: Tensor, attention_mask: Tensor | None, kind: str = "cls") -> Tensor:
    """The (batch, hidden) state a decision reads: [CLS] (``cls``) or the masked token mean (``mean``)."""
    if kind == "cls":
        return hidden[:, 0]
    if kind == "mean":
        if attention_mask is None:
            return hidden.mean(1)
        weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
    raise ValueError(f"unknown state kind '{kind}' (expected one of {', '.join(STATE_KINDS)})")


@torch.no_grad()
def count_layer_calls(backbone: LayerwiseBackbone) -> tuple[list[int], Callable[[], None]]:
    """Count every call of every layer, through its module or the engine's inference path (for tests and
    sanity checks); returns the live counts and a remover."""
    counts = [0] * backbone.n_layers
    backbone._fast_calls = counts
    handles = []
    for i, module in enumerate(backbone.bert.encoder.layer):

        def hook(_m, _inp, _out, i=i):
            counts[i] += 1

        handles.append(module.register_forward_hook(hook))

    def remove() -> None:
        for h in handles:
            h.remove()
        backbone._fast_calls = None

    return counts, remove
