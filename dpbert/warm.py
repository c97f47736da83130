"""A warm Python for the workflow's many short jobs: torch and transformers imported once, each job a fork.

Every Snakemake job is a new Python process, and importing torch and transformers costs about 4 s of
CPU on the project's machines: over the ~90 jobs of the demo, more than its training. With
``execution.warm_worker`` on, a job's script hands itself to a long-lived server that has imported
those libraries (and nothing of this project); the server forks a child that runs the very same
script file, with the job's stdin/stdout/stderr (passed over the socket), working directory,
environment and arguments, and the job exits with the child's status. This project's modules are
imported fresh in every child, so edited code is never stale, and the server is shared by every
checkout that uses the same Python and environment. Signals sent to the job are forwarded to the
child; if the job dies, the child kills itself. The server exits after ``IDLE_S`` seconds without a
job. If anything fails before the child starts, the job simply runs in its own process.

Only the standard library is imported here: the job's own process must stay light.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

IDLE_S = 60.0  # the server exits after this long without a job
START_TIMEOUT_S = 120.0  # how long a job waits for a new server to finish its imports
CHILD_ENV = "DPBERT_WARM_CHILD"  # set in the forked child: run the job here, hand nothing over
DISABLE_ENV = "DPBERT_WARM"  # DPBERT_WARM=0 turns the warm worker off whatever the config says
PRELOAD = [  # third-party only: the project's own code is imported by each child
    "numpy", "pandas", "scipy.stats", "torch", "transformers", "transformers.masking_utils",
    "transformers.models.bert.modeling_bert", "transformers.models.bert.configuration_bert",
    "tokenizers", "safetensors.torch", "tqdm", "yaml", "psutil", "snakemake.script",
]
PROJECT_PACKAGES = ("dpbert", "baselines")
_VOLATILE_ENV = {"_", "OLDPWD", "PWD", "SHLVL"}


def run_job_warm(enabled: bool) -> None:
    """Call first in a Snakemake script: if ``enabled``, run this job in a fork of the warm server and
    exit with its status; return (and let the script go on in this process) when disabled, when this
    already is the forked child, or when the server cannot be had."""
    if not enabled or os.environ.get(CHILD_ENV) or os.environ.get(DISABLE_ENV) == "0" or os.name != "posix":
        return
    address = server_address()
    if len(os.fsencode(address)) >= 100:  # AF_UNIX paths are limited to ~108 bytes
        print(f"warm worker unavailable (socket path too long: {address}); running this job in its own process",
              file=sys.stderr)
        return
    try:
        sock = _connect_or_start(address)
    except OSError as exc:
        print(f"warm worker unavailable ({exc}); running this job in its own process", file=sys.stderr)
        return
    with sock:
        status = _run_remote(sock)
    if status is None:
        print("warm worker did not start the job; running it in its own process", file=sys.stderr)
        return
    sys.exit(status)


def server_address() -> str:
    """One server per Python executable and environment (libraries read some variables at import)."""
    env = {k: v for k, v in os.environ.items() if k not in _VOLATILE_ENV}
    key = hashlib.sha1(json.dumps([sys.executable, sorted(env.items())]).encode()).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / f"dpbert-warm-{os.getuid()}-{key}.sock")


def _connect(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    return sock


def _connect_or_start(address: str) -> socket.socket:
    try:
        return _connect(address)
    except OSError:
        pass
    with open(address + ".lock", "a") as lock:  # one job starts the server, the others wait for it
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _connect(address)
        except OSError:
            pass
        log = open(address + ".log", "a")  # noqa: SIM115 (handed to the server process)
        server = subprocess.Popen([sys.executable, "-c", "import runpy, sys; runpy.run_path(sys.argv[1], "
                                   "run_name='__warm__')", __file__, address], stdin=subprocess.DEVNULL,
                                  stdout=log, stderr=log, start_new_session=True, close_fds=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and server.poll() is None:
            try:
                return _connect(address)
            except OSError:
                time.sleep(0.05)
        why = f"exited with status {server.returncode}" if server.poll() is not None else "did not answer"
        raise OSError(f"the warm server {why} (its log: {address}.log)")


def _run_remote(sock: socket.socket) -> int | None:
    """Send this job (argv, cwd, env, stdio) to the server; forward signals; return the child's status,
    or None if the server never started it (the job then runs here)."""
    request = json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode() + b"\n"
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    reader = sock.makefile("rb")
    try:
        sock.settimeout(START_TIMEOUT_S)  # a server that does not answer at once is stuck, not busy
        socket.send_fds(sock, [request], [0, 1, 2])
        first = reader.readline()
        pid = json.loads(first)["pid"]
    except (OSError, ValueError, KeyError):
        return None
    sock.settimeout(None)  # the job itself may run for hours

    def forward(signum, _frame):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    last = reader.readline()
    if not last:  # the server died: do not leave the child running
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        print("warm server went away while the job ran", file=sys.stderr)
        return 1
    code = json.loads(last)["exit"]
    return code if code >= 0 else 128 - code


# ----------------------------------------------------------------------------------------- server


def _serve(address: str) -> None:
    for name in PRELOAD:
        with contextlib.suppress(Exception):
            __import__(name)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(address)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(address)
    server.listen(16)
    server.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    running: dict[int, socket.socket] = {}  # child pid -> the job's connection
    idle_since = time.monotonic()
    try:
        while running or time.monotonic() - idle_since < IDLE_S:
            for _key, _ in selector.select(timeout=0.05):
                conn, _ = server.accept()
                conn.settimeout(10.0)  # a job sends its request at once; never let one block the server
                pid = _start_child(conn, server)
                if pid is not None:
                    running[pid] = conn
            while running:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                conn = running.pop(pid, None)
                if conn is not None:
                    with contextlib.suppress(OSError):
                        conn.sendall(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
                    conn.close()
                idle_since = time.monotonic()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(address)


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
    while not data.endswith(b"\n"):
        more = conn.recv(1 << 16)
        if not more:
            raise ConnectionError("request cut short")
        data += more
    return json.loads(data), fds


def _start_child(conn: socket.socket, server: socket.socket) -> int | None:
    try:
        request, fds = _receive(conn)
    except (OSError, ValueError, ConnectionError):
        conn.close()
        return None
    conn.settimeout(None)
    pid = os.fork()
    if pid == 0:  # the child: become the job
        server.close()
        code = _child(conn, request, fds)
        os._exit(code)
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    except OSError:
        os.kill(pid, signal.SIGTERM)
    return pid


def _child(conn: socket.socket, request: dict, fds: list[int]) -> int:
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ[CHILD_ENV] = "1"
    sys.argv = list(request["argv"])
    sys.path[0] = str(Path(sys.argv[0]).resolve().parent)  # as `python script.py` would
    for name in [m for m in sys.modules if m.split(".")[0] in PROJECT_PACKAGES]:
        del sys.modules[name]
    sys.stdin, sys.stdout, sys.stderr = (open(0, "r", closefd=False), open(1, "w", buffering=1, closefd=False),  # noqa: SIM115
                                         open(2, "w", buffering=1, closefd=False))

    def die_with_the_job() -> None:  # the job's process ended (killed): stop working for nobody
        with contextlib.suppress(OSError):
            while conn.recv(1024):
                pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=die_with_the_job, daemon=True).start()
    code = 0
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 (reported like an uncaught exception, then the status)
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    return code


if __name__ == "__warm__":  # started by _connect_or_start as: python -c <run this file> <this file> <address>
    _serve(sys.argv[2])
