"""A write that runs out of room (full disk, quota, file-size limit) ends its job with one paragraph
naming the file and the fix (dpbert/model/writes.py), at every place a job writes its records."""

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from dpbert.model.writes import WriteFailedError, room_reason, writing

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("exc", [
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EFBIG, "File too large"),
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"),
    RuntimeError("basic_ios::clear: iostream error"),
    Exception("Error while serializing: I/O error: File too large (os error 27)"),
])
def test_each_shape_of_running_out_of_room_is_recognised(exc):
    assert room_reason(exc) is not None
    with pytest.raises(WriteFailedError) as caught, writing("/w/models/x.pt", "the training checkpoint"):
        raise exc
    text = str(caught.value)
    assert "'/w/models/x.pt'" in text and "df -h /w/models" in text and "\n" not in text


@pytest.mark.parametrize("exc", [OSError(errno.EACCES, "Permission denied"), RuntimeError("shape mismatch"),
                                 ValueError("bad")])
def test_other_errors_pass_through_unchanged(exc):
    with pytest.raises(type(exc)) as caught, writing("/w/x", "the output"):
        raise exc
    assert caught.value is exc


# Each of the job's writers under a 100 KB file-size limit, in a fresh process (the limit is per process).
WRITERS = {
    "atomic_write_df": "import pandas as pd; from dpbert.run.runtime import atomic_write_df; "
                       "atomic_write_df(pd.DataFrame({'a': range(100000)}), OUT / 'sweep.csv')",
    "atomic_write_text": "from dpbert.run.runtime import atomic_write_text; atomic_write_text(OUT / 'x.json', 'x' * 200000)",
    "checkpoint": "import torch; from dpbert.model.writes import writing\n"
                  "with writing(OUT / 'stage1.pt', 'the training checkpoint'): torch.save(torch.zeros(100000), OUT / 'stage1.pt')",
    "save_method_model": "from dpbert.model.method_model import MethodModel, save_method_model\n"
                         "from dpbert.model.sources import word_level_tokenizer\n"
                         "from tests.conftest import tiny_classifier\n"
                         "tok = word_level_tokenizer([f'w{i}' for i in range(55)], 64)\n"
                         "save_method_model(MethodModel(tiny_classifier()), tok, OUT / 'main', {})",
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_a_job_writer_under_a_file_size_limit_fails_in_one_paragraph(name, tmp_path):
    code = ("import resource, sys\nfrom pathlib import Path\nOUT = Path(sys.argv[1])\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n" + WRITERS[name])
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("dpbert.model.writes.WriteFailedError: Writing "), run.stderr[-1500:]
    assert str(tmp_path) in last and "file-size limit" in last and "rerun the same command" in last
