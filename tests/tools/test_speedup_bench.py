"""The speed-up benchmark's pinned cases really execute the layers they claim (the ratio divides by them)."""

from dpbert.tools.speedup_bench import run


def test_every_case_runs_exactly_half_the_layers(one_thread):
    rows = run("demo", "cpu", n_examples=3, repeats=1, warmup=0)  # run() asserts the executed layers
    cases = {r["case"]: r for r in rows}
    assert {"DPBERT (alternate layers)", "DeeBERT (exit at 6)", "PABEE (patience 5)", "BERxiT (exit at 6)",
            "DACT-BERT (halts at 6)", "BERT cut (first 6)"} <= set(cases)
    assert all(r["layer_speedup"] == 2.0 for name, r in cases.items() if name != "engine, all layers")
    assert cases["engine, all layers"]["ratio_vs_engine"] == 1.0
