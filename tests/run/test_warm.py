"""The warm worker: a job run as a fork of the warm server behaves like the same job in its own process."""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from dpbert.run import warm
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the warm worker forks (POSIX only)")


def _script(tmp_path, body: str, name="job.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from dpbert.run.warm import run_job_warm
        run_job_warm(os.environ.get("WANT_WARM") == "1")
    """) + textwrap.dedent(body))
    return path


def _run(path, *, warm=True, env=None, **kw):
    env = {**os.environ, **(env or {}), "WANT_WARM": "1" if warm else "0"}
    env.pop("DPBERT_WARM", None)
    env.pop("DPBERT_WARM_CHILD", None)
    return subprocess.run([sys.executable, str(path), "arg1"], capture_output=True, text=True, env=env,
                          cwd=path.parent, timeout=180, **kw)


@pytest.fixture
def runtime_dir(monkeypatch):
    """A fresh private XDG_RUNTIME_DIR with a short path (AF_UNIX paths are limited to ~108 bytes,
    pytest's tmp_path is longer): the worker's folder is then <it>/dpbert-warm."""
    base = Path(tempfile.mkdtemp(prefix="dw-"))  # mode 0700
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base))
    monkeypatch.delenv(warm.CHILD_ENV, raising=False)
    monkeypatch.delenv(warm.DISABLE_ENV, raising=False)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _wait_for(predicate, timeout=30.0):
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            return False
        time.sleep(0.05)
    return True


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
        import dpbert.data.tasks, dpbert_probe
        print(dpbert_probe.VALUE, dpbert.data.tasks.__file__)
    """)
    (pkg / "__init__.py").write_text("VALUE = 1\n")
    assert _run(path).stdout.split()[0] == "1"
    (pkg / "__init__.py").write_text("VALUE = 2\n")
    first, second = _run(path).stdout.split()
    assert first == "2" and second == str(ROOT / "dpbert" / "data" / "tasks.py")


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
        from dpbert.run.warm import run_job_warm
        run_job_warm(True)
        print("ran", os.environ.get("DPBERT_WARM_CHILD"))
    """))
    runtime = tempfile.mkdtemp(prefix="dw-")
    try:
        env = {**os.environ, "XDG_RUNTIME_DIR": runtime}
        env.pop("DPBERT_WARM_CHILD", None)
        start = time.time()
        result = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env, timeout=120,
                                check=False)
        assert result.returncode == 0 and result.stdout.split() == ["ran", "None"], result.stderr
        assert "warm worker unavailable (the warm server exited" in result.stderr and time.time() - start < 30
        assert os.listdir(Path(runtime) / "dpbert-warm") == []  # its lock and log are gone with it
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


# ------------------------------------------------------------------------ nobody else gets in


def test_the_worker_folder_is_private_and_anything_else_is_refused(runtime_dir, monkeypatch, capsys):
    address = warm.server_address()
    folder = runtime_dir / "dpbert-warm"
    assert Path(address).parent == folder
    st = os.lstat(folder)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.getuid()

    os.chmod(folder, 0o755)  # readable by others: refused, and left as it is
    with pytest.raises(warm.Refused, match="mode 0755, not 0700"):
        warm.server_address()
    warm.run_job_warm(True)  # returns: the job runs in its own process
    assert "warm worker refused" in capsys.readouterr().err and stat.S_IMODE(os.lstat(folder).st_mode) == 0o755

    folder.rmdir()
    elsewhere = runtime_dir / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    folder.symlink_to(elsewhere)  # even to a private folder of ours: never followed
    with pytest.raises(warm.Refused, match="is a symlink"):
        warm.server_address()
    folder.unlink()

    folder.mkdir(mode=0o700)
    real_uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)  # the folder now belongs to "someone else"
    with pytest.raises(warm.Refused, match=f"owned by uid {real_uid}, not {real_uid + 1}"):
        warm._private_dir(folder)


def test_without_a_private_runtime_dir_the_folder_is_per_user_in_the_temp_dir(runtime_dir, monkeypatch):
    tmp = runtime_dir / "tmp"
    tmp.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    os.chmod(runtime_dir, 0o755)  # not private: not used
    assert Path(warm.server_address()).parent == tmp / f"dpbert-warm-{os.getuid()}"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    folder = tmp / f"dpbert-warm-{os.getuid()}"
    assert Path(warm.server_address()).parent == folder and stat.S_IMODE(os.lstat(folder).st_mode) == 0o700
    os.chmod(folder, 0o711)
    with pytest.raises(warm.Refused, match="mode 0711"):
        warm.server_address()


def test_a_socket_of_another_uid_gets_nothing_and_the_job_runs_in_its_own_process(runtime_dir, monkeypatch,
                                                                                    capsys):
    """Someone else listening at the worker's address (simulated: the peer-credentials check reports
    another uid) receives not one byte: no environment, no stdio, and nothing of ours is signalled."""
    monkeypatch.setenv("MY_API_TOKEN", "do-not-send")
    address = warm.server_address()
    impostor = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    impostor.bind(address)
    impostor.listen(1)
    impostor.settimeout(30)
    received = []

    def listen():
        conn, _ = impostor.accept()
        with conn:
            conn.settimeout(30)
            data = b""
            while chunk := conn.recv(1 << 16):
                data += chunk
            received.append(data)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    other = os.getuid() + 1
    monkeypatch.setattr(warm, "peer_credentials", lambda sock: (4242, other, other))
    warm.run_job_warm(True)  # returns (no sys.exit): the job goes on in this process
    thread.join(30)
    impostor.close()
    assert received == [b""]
    err = capsys.readouterr().err
    assert f"warm worker refused (the warm server at the other end of the socket runs as uid {other}" in err
    assert "running this job in its own process" in err
    assert os.listdir(Path(address).parent) == [Path(address).name]  # no lock taken, no server started


def test_the_server_refuses_a_job_of_another_uid_and_cleans_up_on_sigterm(runtime_dir, tmp_path):
    folder = Path(warm.server_address()).parent
    address, lock, log = str(folder / "k.sock"), folder / "k.lock", folder / "k.x.log"
    lock.touch()  # as the job that starts a server leaves them
    log.touch()
    marker = tmp_path / "ran"
    job = tmp_path / "job.py"
    job.write_text(f"open({str(marker)!r}, 'w').close()\n")
    code = (f"import os, sys; sys.path.insert(0, {str(ROOT)!r}); import dpbert.run.warm as w; w.PRELOAD = []; "
            "w.peer_credentials = lambda sock: (1, os.getuid() + 1, 1); w._serve(sys.argv[1], sys.argv[2])")
    server = subprocess.Popen([sys.executable, "-c", code, address, str(log)], stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: os.path.exists(address))
        with warm._connect(address) as sock:  # the server is ours: this end's check passes
            sock.settimeout(30)
            request = json.dumps({"argv": [str(job)], "cwd": str(tmp_path), "env": {}}).encode() + b"\n"
            try:
                socket.send_fds(sock, [request], [0, 1, 2])
                answer = sock.recv(1024)
            except (BrokenPipeError, ConnectionResetError):
                answer = b""
        assert answer == b""  # dropped: no pid, no child
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 128 + signal.SIGTERM, err
    assert f"refused a connection: the job at the other end of the socket runs as uid {os.getuid() + 1}" in err
    assert not marker.exists()
    assert os.listdir(folder) == []  # socket, log and start lock removed on SIGTERM


def test_only_the_allowed_environment_is_sent():
    env = {"PATH": "/bin", "HOME": "/h", "LANG": "C.UTF-8", "LC_ALL": "C", "PYTHONHASHSEED": "0",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "0", "TORCH_HOME": "/t",
           "HF_HOME": "/hf", "HF_HUB_OFFLINE": "1", "HF_TOKEN": "hf_x", "TRANSFORMERS_CACHE": "/tc",
           "TOKENIZERS_PARALLELISM": "false", "SNAKEMAKE_PROFILE": "p", "DPBERT_WARM_IDLE_S": "5",
           "TMPDIR": "/tmp", "XDG_RUNTIME_DIR": "/run/user/1", "USER": "u", "https_proxy": "http://p:3128",
           "AWS_SECRET_ACCESS_KEY": "x", "AWS_ACCESS_KEY_ID": "x", "MY_API_TOKEN": "x", "GITHUB_TOKEN": "x",
           "OPENAI_API_KEY": "x", "SSH_AUTH_SOCK": "/s", "DATABASE_URL": "x", "WANT_WARM": "1",
           "SNAKEMAKE_STORAGE_S3_SECRET_KEY": "x", "XDG_SESSION_COOKIE": "x", "PWD": "/w", "OLDPWD": "/v"}
    sent = warm.job_environment(env)
    assert set(sent) == {"PATH", "HOME", "LANG", "LC_ALL", "PYTHONHASHSEED", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                         "CUDA_VISIBLE_DEVICES", "TORCH_HOME", "HF_HOME", "HF_HUB_OFFLINE", "HF_TOKEN",
                         "TRANSFORMERS_CACHE", "TOKENIZERS_PARALLELISM", "SNAKEMAKE_PROFILE", "DPBERT_WARM_IDLE_S",
                         "TMPDIR", "XDG_RUNTIME_DIR", "USER", "https_proxy"}
    assert all(sent[k] == env[k] for k in sent)


def test_the_cpu_kernel_pinning_reaches_the_fork_and_keys_the_server(runtime_dir, monkeypatch):
    """torch, MKL and oneDNN read these when torch loads (execution.reproducible): a server started
    without them must never serve a pinned job, nor the other way round."""
    pinning = {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
               "DNNL_MAX_CPU_ISA": "AVX2", "DPBERT_REPRODUCIBLE": "1"}
    assert warm.job_environment({**pinning, "PATH": "/bin"}) == {**pinning, "PATH": "/bin"}
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    default = warm.server_address()
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    pinned = warm.server_address()
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    assert len({default, pinned, warm.server_address()}) == 3


def test_a_warm_job_gets_only_the_allowed_environment_and_no_file_outlives_the_server(runtime_dir, tmp_path):
    folder = runtime_dir / "dpbert-warm"
    path = _script(tmp_path, f"""
        import json, stat
        folder = {str(folder)!r}
        files = {{n: oct(stat.S_IMODE(os.lstat(os.path.join(folder, n)).st_mode)) for n in os.listdir(folder)}}
        names = ("DPBERT_WARM_CHILD", "MY_API_TOKEN", "AWS_SECRET_ACCESS_KEY", "HF_TOKEN", "HF_HOME", "PATH")
        print(json.dumps({{"env": {{n: os.environ.get(n) for n in names}}, "files": files}}))
    """)
    secrets = {"MY_API_TOKEN": "t0ps3cret", "AWS_SECRET_ACCESS_KEY": "aws-secret", "HF_TOKEN": "hf_test",
               "HF_HOME": str(tmp_path / "hf"), "XDG_RUNTIME_DIR": str(runtime_dir), warm.IDLE_ENV: "1"}
    result = _run(path, env=secrets)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["env"]["DPBERT_WARM_CHILD"] == "1"  # it did run warm
    assert seen["env"]["MY_API_TOKEN"] is None and seen["env"]["AWS_SECRET_ACCESS_KEY"] is None
    assert seen["env"]["HF_TOKEN"] == "hf_test" and seen["env"]["HF_HOME"] == secrets["HF_HOME"]
    assert seen["env"]["PATH"] == os.environ["PATH"]
    kinds = sorted(Path(n).suffix for n in seen["files"])
    assert kinds == [".lock", ".log", ".sock"], seen["files"]  # while it serves: its socket, lock and log
    assert all(mode == "0o600" for n, mode in seen["files"].items() if not n.endswith(".sock"))
    assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o700
    assert _wait_for(lambda: os.listdir(folder) == [], timeout=60), os.listdir(folder)  # idle exit: all gone


def test_a_warm_jobs_wall_time_counts_from_its_own_process(tmp_path):
    """process_age_s in the fork counts from the start of the job's own process (the thin client
    Snakemake started), not from the fork: a second spent before the hand-off is in the job's time."""
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        if not os.environ.get("DPBERT_WARM_CHILD"):  # the fork runs this file again, from the top
            print("client", os.getpid(), flush=True)
            time.sleep(1.0)  # the client's own start-up, before it hands the job over
        from dpbert.run.warm import run_job_warm
        run_job_warm(True)
        from dpbert.run.runtime import process_age_s
        print("fork", os.getpid(), os.environ.get("DPBERT_WARM_CLIENT_PID"), process_age_s())
    """))
    result = _run(path)
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert [w[0] for w in lines] == ["client", "fork"], result.stdout
    (_, client), (_, fork, passed, age) = lines
    assert fork != client and passed == client
    assert float(age) >= 1.0  # the fork itself is younger than the sleep before it was made


# ------------------------------------------------------------- limits, descriptors, cluster executors

_BIG = 171_000  # bytes: more than `ulimit -f 100` (100 blocks of 1024 bytes) lets a process write
_FSIZE_100 = 100 * 1024


def _fsize_100():
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (_FSIZE_100, _FSIZE_100))


def _writer(tmp_path):
    """A job that says whether it ran warm, then writes _BIG bytes (the error as the job's last line)."""
    return _script(tmp_path, f"""
        print("warm", os.environ.get("DPBERT_WARM_CHILD"), flush=True)
        try:
            with open({str(tmp_path / "big.bin")!r}, "wb") as out:
                out.write(b"x" * {_BIG})
        except OSError as exc:
            print("error", exc)
            sys.exit(4)
        print("wrote", os.path.getsize({str(tmp_path / "big.bin")!r}))
    """)


def _test_server(address: str, log: Path, patch: str = "") -> subprocess.Popen:
    """A warm server at ``address`` without preloads, after ``patch`` (Python run in it first, ``w`` the module)."""
    code = (f"import os, sys; sys.path.insert(0, {str(ROOT)!r}); import dpbert.run.warm as w; w.PRELOAD = []; "
            f"{patch}; w._serve(sys.argv[1], sys.argv[2])")
    server = subprocess.Popen([sys.executable, "-c", code, address, str(log)], stderr=subprocess.PIPE, text=True)
    assert _wait_for(lambda: os.path.exists(address)), server.stderr.read() if server.poll() is not None else ""
    return server


def test_a_warm_job_keeps_the_jobs_file_size_limit(runtime_dir, tmp_path):
    """Under `ulimit -f 100` a job cannot write 171 KB, warm as cold, with the same error; the server
    (started by a job without the limit) never had it."""
    path = _writer(tmp_path)
    free = _run(path)  # starts the server, without the limit: it writes the whole file
    assert free.returncode == 0 and free.stdout.split() == ["warm", "1", "wrote", str(_BIG)], free.stderr
    warm_run = _run(path, preexec_fn=_fsize_100)
    cold_run = _run(path, warm=False, preexec_fn=_fsize_100)
    assert warm_run.stdout.splitlines()[0] == "warm 1", warm_run.stderr  # it did run in a fork of that server
    assert cold_run.stdout.splitlines()[0] == "warm None"
    assert warm_run.returncode == cold_run.returncode == 4, (warm_run.stderr, cold_run.stderr)
    assert warm_run.stdout.splitlines()[1] == cold_run.stdout.splitlines()[1] == "error [Errno 27] File too large"
    assert (tmp_path / "big.bin").stat().st_size == _FSIZE_100  # what the limit let through


def test_a_limit_the_fork_cannot_take_sends_the_job_to_its_own_process(runtime_dir, tmp_path):
    """A limit the child cannot set (here every setrlimit fails, as raising a hard limit does for an
    unprivileged server) is never dropped: the job runs in its own process, under its limit."""
    log = tmp_path / "server.log"
    server = _test_server(warm.server_address(), log, patch=(
        "w.resource.setrlimit = lambda *a: (_ for _ in ()).throw(PermissionError(1, 'Operation not permitted'))"))
    try:
        result = _run(_writer(tmp_path), preexec_fn=_fsize_100)
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    assert result.stdout.splitlines() == ["warm None", "error [Errno 27] File too large"], result.stderr
    assert "warm worker refused this job (cannot set RLIMIT_FSIZE to (102400, 102400)" in result.stderr
    assert "Operation not permitted" in result.stderr


def test_a_job_in_another_cgroup_runs_in_its_own_process(runtime_dir, tmp_path):
    """A fork stays in the server's control group: a job in another (a cluster job's memory limit, a
    systemd scope) is sent back to run in its own process."""
    other = tmp_path / "cgroup"
    other.write_text("0::/some/other.scope\n")
    server = _test_server(warm.server_address(), tmp_path / "server.log", patch=f"w.CGROUP_FILE = {str(other)!r}")
    try:
        result = _run(_writer(tmp_path))
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    assert result.returncode == 0 and result.stdout.split()[:2] == ["warm", "None"], result.stderr
    assert "warm worker refused this job (the job runs in another control group" in result.stderr


def test_refusal_and_the_limits_a_job_sends():
    limits = warm.job_limits()
    assert {"RLIMIT_FSIZE", "RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_CPU", "RLIMIT_NOFILE"} <= set(limits)
    assert "RLIMIT_OFILE" not in limits
    warm.apply_limits(limits)  # the same limits: nothing to set
    own = warm.own_cgroup()
    assert warm.refusal({"rlimits": limits, "cgroup": own}, own) is None
    assert "another control group" in warm.refusal({"rlimits": limits, "cgroup": "0::/x\n"}, own)
    assert "no resource limits" in warm.refusal({"cgroup": own}, own)
    with pytest.raises(OSError, match="RLIMIT_NOPE is no resource limit"):
        warm.apply_limits({"RLIMIT_NOPE": [1, 1]})


def test_a_forked_job_holds_no_descriptor_of_the_server_or_of_other_jobs(runtime_dir, tmp_path):
    """While another warm job runs, a job's fork has its stdio and one socket, its own connection; the
    server at that moment holds its listening socket and both jobs' connections."""
    started, done = tmp_path / "started", tmp_path / "done"
    sleeper = _script(tmp_path, f"""
        import time
        open({str(started)!r}, "w").close()
        deadline = time.time() + 60
        while not os.path.exists({str(done)!r}) and time.time() < deadline:
            time.sleep(0.05)
    """, name="sleeper.py")
    probe = _script(tmp_path, """
        import json
        def links(pid):
            out = {}
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    pass  # the descriptor listdir itself used
            return out
        print(json.dumps({"warm": os.environ.get("DPBERT_WARM_CHILD"), "own": links("self"),
                          "server": links(os.getppid())}))
    """, name="probe.py")
    env = {**os.environ, "WANT_WARM": "1"}
    env.pop("DPBERT_WARM_CHILD", None)
    env.pop("DPBERT_WARM", None)
    other = subprocess.Popen([sys.executable, str(sleeper)], env=env, cwd=tmp_path)
    try:
        assert _wait_for(started.exists, timeout=120)
        result = _run(probe)
    finally:
        done.touch()
        other.wait(timeout=60)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["warm"] == "1"
    own = {int(fd): link for fd, link in seen["own"].items()}
    server_sockets = {link for link in seen["server"].values() if link.startswith("socket:")}
    own_sockets = [link for link in own.values() if link.startswith("socket:")]
    assert len(server_sockets) >= 3, seen["server"]  # listening, the sleeper's, the probe's
    assert len(own_sockets) == 1 and own_sockets[0] in server_sockets, own  # its own connection only
    assert set(own) - {0, 1, 2} == {fd for fd, link in own.items() if link.startswith("socket:")}, own


@pytest.mark.parametrize(("executor", "mode", "allowed"), [
    ("local", "DEFAULT", True), (None, "DEFAULT", True), ("dryrun", "DEFAULT", True), ("touch", None, True),
    ("slurm", "DEFAULT", False), ("cluster-generic", "DEFAULT", False), ("kubernetes", None, False),
    (None, "REMOTE", False), ("slurm-jobstep", "REMOTE", False), ("local", "remote", False)])
def test_the_warm_worker_is_off_under_any_cluster_executor(executor, mode, allowed):
    assert warm.warm_allowed(executor, mode) is allowed
