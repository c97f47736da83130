"""Data: the task table (``tasks``), where examples come from (``sources``: GLUE TSV folders, the
hub; ``synthetic``: the demo's generator), and tokenisation once per task (``encoding``, ``prepare``)."""
