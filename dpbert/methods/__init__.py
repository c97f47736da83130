"""Methods: the interface every method implements (``interface``), its discovery (``registry``) and
the core methods, BERT-base (``bert_base``) and DPBERT / DPBERT-soft (``dpbert``). Nothing is
imported here: importing the interface never imports an implementation."""
