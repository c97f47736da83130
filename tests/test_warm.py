"""The warm worker: a job run as a fork of the warm server behaves like the same job in its own process."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the warm worker forks (POSIX only)")


def _script(tmp_path, body: str, name="job.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from dpbert.warm import run_job_warm
        run_job_warm(os.environ.get("WANT_WARM") == "1")
    """) + textwrap.dedent(body))
    return path


def _run(path, *, warm=True, **kw):
    env = {**os.environ, "WANT_WARM": "1" if warm else "0"}
    env.pop("DPBERT_WARM", None)
    env.pop("DPBERT_WARM_CHILD", None)
    return subprocess.run([sys.executable, str(path), "arg1"], capture_output=True, text=True, env=env,
                          cwd=path.parent, timeout=180, **kw)


def test_job_runs_in_a_fork_with_the_jobs_stdio_args_cwd_and_status(tmp_path):
    path = _script(tmp_path, """
        import torch  # preloaded by the server
        print("child", os.getpid(), os.getppid(), os.environ.get("DPBERT_WARM_CHILD"), sys.argv[1:], os.getcwd())
        print("to stderr", file=sys.stderr)
        sys.exit(3)
    """)
    result = _run(path)
    assert result.returncode == 3, result.stderr
    _, pid, ppid, flag, args, cwd = result.stdout.split(maxsplit=5)
    assert flag == "1" and args == "['arg1']" and cwd.strip() == str(tmp_path)
    assert "to stderr" in result.stderr
    cold = _run(path, warm=False)
    assert cold.returncode == 3 and cold.stdout.split()[3] == "None"  # the same script, in its own process


def test_an_exception_is_reported_and_fails_the_job(tmp_path):
    result = _run(_script(tmp_path, "raise ValueError('bad input named here')\n"))
    assert result.returncode == 1 and "ValueError: bad input named here" in result.stderr


def test_project_code_is_imported_fresh_in_every_job(tmp_path):
    """The server holds third-party libraries only: an edit of the project between two jobs is seen."""
    pkg = tmp_path / "dpbert_probe"
    pkg.mkdir()
    path = _script(tmp_path, f"""
        sys.path.insert(0, {str(tmp_path)!r})
        import dpbert.tasks, dpbert_probe
        print(dpbert_probe.VALUE, dpbert.tasks.__file__)
    """)
    (pkg / "__init__.py").write_text("VALUE = 1\n")
    assert _run(path).stdout.split()[0] == "1"
    (pkg / "__init__.py").write_text("VALUE = 2\n")
    first, second = _run(path).stdout.split()
    assert first == "2" and second == str(ROOT / "dpbert" / "tasks.py")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_killing_the_job_kills_its_fork(tmp_path, signum):
    marker = tmp_path / "child.pid"
    path = _script(tmp_path, f"""
        import time
        open({str(marker)!r}, "w").write(str(os.getpid()))
        time.sleep(120)
    """)
    env = {**os.environ, "WANT_WARM": "1"}
    env.pop("DPBERT_WARM_CHILD", None)
    proc = subprocess.Popen([sys.executable, str(path)], env=env, cwd=tmp_path, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.1)
    child = int(marker.read_text())
    assert child != proc.pid
    proc.send_signal(signum)  # SIGTERM: Snakemake on Ctrl-C (forwarded); SIGKILL: nothing can be forwarded
    code = proc.wait(timeout=30)
    assert code == (128 + signal.SIGTERM if signum == signal.SIGTERM else -signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the forked child outlived its job")


def test_a_server_that_cannot_start_costs_nothing(tmp_path):
    """A server that dies at start (here: its interpreter is /bin/false) must not stall the job: it runs
    in its own process at once, with a line saying why."""
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        sys.executable = "/bin/false"
        from dpbert.warm import run_job_warm
        run_job_warm(True)
        print("ran", os.environ.get("DPBERT_WARM_CHILD"))
    """))
    env = dict(os.environ)
    env.pop("DPBERT_WARM_CHILD", None)
    start = time.time()
    result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and result.stdout.split() == ["ran", "None"], result.stderr
    assert "warm worker unavailable (the warm server exited" in result.stderr and time.time() - start < 30
