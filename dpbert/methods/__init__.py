"""Methods that are part of the core: the BERT-base backbone and DPBERT / DPBERT-soft."""

from dpbert.methods import bert_base, dpbert  # noqa: F401
