"""One method job: train, score the sweep (``sweep``, with the window search of ``refine``), time
it (``latency``), write records (``job``), plus the config check run before any job."""
