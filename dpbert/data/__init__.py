"""Data: the task table (``tasks``), where examples come from (``sources``: GLUE TSV folders, the
hub; ``synthetic``: the demo's generator), and tokenisation (``encoding``; a task is tokenised once by dpbert.run.prepare)."""
