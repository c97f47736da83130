"""Model: where a backbone comes from (``sources``), the one layer loop every method runs through
(``engine``), a backbone plus a method's extra modules (``method_model``) and the training loop."""
