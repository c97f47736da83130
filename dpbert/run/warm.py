"""A warm Python for the workflow's many short jobs: torch and transformers imported once, each job a fork.

Every Snakemake job is a new Python process, and importing torch and transformers costs about 4 s of
CPU on the project's machines: over the ~90 jobs of the demo, more than its training. With
``execution.warm_worker`` on, a job's script hands itself to a long-lived server that has imported
those libraries (and nothing of this project); the server forks a child that runs the very same
script file, with the job's stdin/stdout/stderr (passed over the socket), working directory,
allowed environment (``job_environment``) and arguments, and the job exits with the child's status.
This project's modules are imported fresh in every child, so edited code is never stale, and the
server is shared by every checkout that uses the same Python and (allowed) environment. Signals sent
to the job are forwarded to the child; if the job dies, the child kills itself. The server exits
after ``IDLE_S`` seconds without a job (``DPBERT_WARM_IDLE_S`` overrides), or on SIGTERM/SIGINT/
SIGHUP, and removes its socket, its log and the start lock as it goes. If anything fails before the
child starts, the job simply runs in its own process.

A job keeps its own limits, and nothing of the server's. The job sends its resource limits
(``job_limits``: every ``RLIMIT_*``, e.g. ``ulimit -f``, ``-v``, ``-t``, ``-n``) and the child sets
them before the job starts (``apply_limits``); one it cannot set (a hard limit above the server's:
only a privileged process may raise one) sends the job back to run in its own process, as does a job
in another control group than the server's (``/proc/self/cgroup``: a cgroup's memory or CPU limit
cannot be joined from a fork). The child closes every file descriptor but the job's stdin, stdout,
stderr and its own connection (``close_other_fds``): the server's listening socket and the
connections of other running jobs never reach a job. Under a cluster executor (any but Snakemake's
local ones, ``warm_allowed``) the workflow turns the worker off (``DPBERT_WARM=0``), and each job runs
in its own process under the scheduler's limits.

Nobody else gets in. The socket, the start lock and the server's log live in a folder only this
user can enter (``worker_dir``: ``$XDG_RUNTIME_DIR/dpbert-warm`` when that is this user's own
private folder, else ``<tempdir>/dpbert-warm-<uid>``), created with mode 0700 and checked every
time: a symlink, a folder of another owner or any mode but 0700 is refused, and the job runs in its
own process with a line saying why. Both ends also check who is at the other end of the socket
(``check_peer``, SO_PEERCRED, Linux only; elsewhere jobs always run in their own process): a job
sends nothing to a server of another uid, and the server drops a connection from another uid
before reading it. A job sends only the variables on the allow-list, never its whole environment.

Only the standard library is imported here: the job's own process must stay light.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import resource
import runpy
import selectors
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

IDLE_S = 60.0  # the server exits after this long without a job
IDLE_ENV = "DPBERT_WARM_IDLE_S"  # overrides IDLE_S (read by the server when it starts)
START_TIMEOUT_S = 120.0  # how long a job waits for a new server to finish its imports
LOCK_WAIT_S = 10.0  # how long an exiting server waits for the start lock, to remove it
CHILD_ENV = "DPBERT_WARM_CHILD"  # set in the forked child: run the job here, hand nothing over
DISABLE_ENV = "DPBERT_WARM"  # DPBERT_WARM=0 turns the warm worker off whatever the config says
CLIENT_PID_ENV = "DPBERT_WARM_CLIENT_PID"  # set in the forked child: the pid of the job's own process
PRELOAD = [  # third-party only: the project's own code is imported by each child
    "numpy", "pandas", "scipy.stats", "torch", "transformers", "transformers.masking_utils",
    "transformers.models.bert.modeling_bert", "transformers.models.bert.configuration_bert",
    "tokenizers", "safetensors.torch", "tqdm", "yaml", "psutil", "snakemake.script",
]
PROJECT_PACKAGES = ("dpbert", "baselines")
_VOLATILE_ENV = {"_", "OLDPWD", "PWD", "SHLVL"}
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_SERVER_CODE = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__warm__')"  # argv: this file, address, log
# Snakemake's executors that run a job on this machine, in a process of the run's own (exec mode
# default); any other (slurm, cluster-generic, kubernetes, ...) runs it under a scheduler's limits
LOCAL_EXECUTORS = frozenset({"local", "dryrun", "touch"})
# every resource limit a job's process has, by name (RLIMIT_OFILE is RLIMIT_NOFILE under another name)
LIMITS = {name: getattr(resource, name) for name in sorted(dir(resource))
          if name.startswith("RLIMIT_") and name != "RLIMIT_OFILE"}
CGROUP_FILE = "/proc/self/cgroup"

# The environment a job takes to the server (and the server is started with): these names, and names
# starting with these prefixes, less any name that looks like a credential (a word of it, split at
# "_", ends in one of SECRET_WORDS) unless named in SECRETS_SENT. Everything a job of this project
# reads is here: the locale, paths and the virtual environment, Python's own variables
# (PYTHONHASHSEED, PYTHONPATH), thread counts (OMP_/MKL_/...), the CPU kernels' pinning (MKL_CBWR,
# ATEN_CPU_CAPABILITY, ONEDNN_/DNNL_MAX_CPU_ISA: execution.reproducible; read when torch loads, so they
# also key the server's address), the GPU's (CUDA_/CUBLAS_/NCCL_/...),
# torch's, the Hugging Face libraries' (HF_HOME, HF_HUB_OFFLINE, HF_DATASETS_OFFLINE,
# TOKENIZERS_PARALLELISM, ...), the proxies and CA bundles that hub downloads go through
# (prepare_data runs warm too), Snakemake's and this project's (DPBERT_*). HF_TOKEN is sent: gated or
# private hub downloads need it, and it only ever reaches a process of this same user (who can read
# ~/.cache/huggingface/token anyway). Anything else (AWS_*, GITHUB_TOKEN, MY_API_TOKEN, SSH_AUTH_SOCK,
# ...) stays in the job's own process; a job that needs another variable in its fork must be added
# here (or run with DPBERT_WARM=0).
ENV_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "COLUMNS", "LINES",
    "NO_COLOR", "FORCE_COLOR", "TMPDIR", "TMP", "TEMP", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "LD_PRELOAD",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
    "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "HUGGING_FACE_HUB_TOKEN",
})
ENV_PREFIXES = (
    "LC_", "XDG_", "PYTHON", "CONDA_", "DPBERT_", "SNAKEMAKE", "OMP_", "KMP_", "GOMP_", "MKL_",
    "OPENBLAS_", "NUMEXPR_", "VECLIB_", "ATEN_", "ONEDNN_", "DNNL_", "CUDA_", "CUBLAS_", "CUDNN_", "NCCL_",
    "NVIDIA_", "TORCH",
    "PYTORCH_", "TRITON_", "HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TOKENIZERS_", "SAFETENSORS_",
    "TQDM_", "MPL",
)
SECRET_WORDS = ("TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD", "PASSWORDS", "PASSWD", "CREDENTIAL",
                "CREDENTIALS", "COOKIE", "COOKIES", "KEY", "KEYS", "AUTH")
SECRETS_SENT = frozenset({"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"})


class Refused(Exception):
    """The warm worker is not used: its folder, or the process at the other end of its socket, is not
    this user's own."""


def warm_allowed(executor: str | None, exec_mode: str | None = None) -> bool:
    """Whether jobs may run warm under Snakemake's ``executor`` (its name; None while not yet known) and
    ``exec_mode`` (``default``, ``subprocess``, ``remote``): not under any executor but the local ones,
    and not in a job's own Snakemake process on a cluster node (``--mode remote``)."""
    if exec_mode is not None and exec_mode.lower() == "remote":
        return False
    return executor is None or executor in LOCAL_EXECUTORS


def job_limits() -> dict[str, list[int]]:
    """This process's resource limits, {RLIMIT_ name: [soft, hard]} (-1: unlimited)."""
    out = {}
    for name, which in LIMITS.items():
        with contextlib.suppress(OSError, ValueError):
            out[name] = list(resource.getrlimit(which))
    return out


def apply_limits(limits: dict[str, list[int]]) -> None:
    """Set this process's resource limits to ``limits`` (as ``job_limits`` gives them), each that differs;
    raise OSError naming the first one that cannot be set (raising a hard limit needs privileges)."""
    for name, wanted in limits.items():
        which = LIMITS.get(name)
        if which is None:
            raise OSError(f"{name} is no resource limit of this system")
        wanted = (int(wanted[0]), int(wanted[1]))
        if resource.getrlimit(which) == wanted:
            continue
        try:
            resource.setrlimit(which, wanted)
        except (OSError, ValueError) as exc:
            raise OSError(f"cannot set {name} to {wanted} (the server's is {resource.getrlimit(which)}): "
                          f"{exc}") from None


def own_cgroup() -> str | None:
    """The control groups of this process (/proc/self/cgroup), None where there is no such file."""
    try:
        return Path(CGROUP_FILE).read_text()
    except OSError:
        return None


def refusal(request: dict, server_cgroup: str | None) -> str | None:
    """Why the server must not fork the job of ``request`` (None: it may): the job runs in another
    control group than the server (a fork cannot join it), or it sent no limits to keep."""
    if request.get("cgroup") != server_cgroup:
        return "the job runs in another control group than the warm server; a fork cannot join it"
    if not isinstance(request.get("rlimits"), dict):
        return "the job sent no resource limits"
    return None


def close_other_fds(keep) -> None:
    """Close every file descriptor of this process but those in ``keep``."""
    keep = set(keep)
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc: every descriptor below the soft limit
        fds = range(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    for fd in fds:
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def run_job_warm(enabled: bool) -> None:
    """Call first in a Snakemake script: if ``enabled``, run this job in a fork of the warm server and
    exit with its status; return (and let the script go on in this process) when disabled, when this
    already is the forked child, or when the server cannot be had or is not to be trusted."""
    if not enabled or os.environ.get(CHILD_ENV) or os.environ.get(DISABLE_ENV) == "0" or os.name != "posix":
        return
    try:
        address = server_address()
        if len(os.fsencode(address)) >= 100:  # AF_UNIX paths are limited to ~108 bytes
            raise OSError(f"socket path too long: {address}")
        sock = _connect_or_start(address)
    except Refused as exc:
        print(f"warm worker refused ({exc}); running this job in its own process", file=sys.stderr)
        return
    except OSError as exc:
        print(f"warm worker unavailable ({exc}); running this job in its own process", file=sys.stderr)
        return
    with sock:
        status = _run_remote(sock)
    if status is None:
        print("warm worker did not start the job; running it in its own process", file=sys.stderr)
        return
    sys.exit(status)


def job_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables of ``environ`` (default: this process's) that a job takes to the warm server."""
    environ = os.environ if environ is None else environ
    return {name: value for name, value in environ.items() if _env_sent(name)}


def _env_sent(name: str) -> bool:
    if name not in ENV_NAMES and not name.startswith(ENV_PREFIXES):
        return False
    # a word of the name (split at "_") that is or ends in one of SECRET_WORDS: AWS_SECRET_ACCESS_KEY,
    # XDG_SESSION_COOKIE, SNAKEMAKE_STORAGE_S3_SECRET_KEY; not TOKENIZERS_PARALLELISM
    return name in SECRETS_SENT or not any(part.endswith(SECRET_WORDS) for part in name.upper().split("_"))


def server_address() -> str:
    """One server per Python executable, environment (libraries read some variables at import) and version
    of this file, its socket in this user's private folder (created and checked here; raises Refused or OSError)."""
    env = {k: v for k, v in job_environment().items() if k not in _VOLATILE_ENV}
    code = hashlib.sha1(Path(__file__).read_bytes()).hexdigest()  # a server runs the protocol of its own file
    key = hashlib.sha1(json.dumps([sys.executable, sorted(env.items()), code]).encode()).hexdigest()[:16]
    return str(worker_dir() / f"{key}.sock")


def worker_dir() -> Path:
    """The folder of the sockets, locks and logs: ``$XDG_RUNTIME_DIR/dpbert-warm`` when that runtime
    folder is set and is this user's private folder, else ``<tempdir>/dpbert-warm-<uid>``; made with
    mode 0700 if missing, refused (Refused) unless it is a real folder of this uid with mode 0700."""
    uid = os.getuid()
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if _own_private_folder(runtime, uid):
        return _private_dir(Path(runtime) / "dpbert-warm")
    base = Path(tempfile.gettempdir())
    st = os.stat(base)
    if st.st_uid not in (0, uid) or (st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX):
        raise Refused(f"{base} lets others rename what is in it (owner uid {st.st_uid}, mode "
                      f"{stat.S_IMODE(st.st_mode):04o})")
    return _private_dir(base / f"dpbert-warm-{uid}")


def _own_private_folder(path: str, uid: int) -> bool:
    if not path or not os.path.isabs(path):
        return False
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == uid and not st.st_mode & 0o077
            and os.access(path, os.W_OK | os.X_OK))


def _private_dir(path: Path) -> Path:
    """Make ``path`` (mode 0700) unless it exists; raise Refused unless it is a folder, not a symlink,
    owned by this uid, with mode exactly 0700. Its mode is never changed, except right after making it
    (a umask may have taken bits off)."""
    uid = os.getuid()
    created = False
    try:
        os.mkdir(path, 0o700)
        created = True
    except FileExistsError:
        pass
    if stat.S_ISLNK(os.lstat(path).st_mode):
        raise Refused(f"{path} is a symlink")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise Refused(f"{path} is not a folder ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if created and st.st_uid == uid and stat.S_IMODE(st.st_mode) != 0o700:
            os.fchmod(fd, 0o700)
            st = os.fstat(fd)
    finally:
        os.close(fd)
    if st.st_uid != uid:
        raise Refused(f"{path} is owned by uid {st.st_uid}, not {uid}")
    if stat.S_IMODE(st.st_mode) != 0o700:
        raise Refused(f"{path} has mode {stat.S_IMODE(st.st_mode):04o}, not 0700")
    return path


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a connected Unix socket (Linux SO_PEERCRED:
    for a job, the server that listens; for the server, the job that connected)."""
    if not hasattr(socket, "SO_PEERCRED"):
        raise Refused("this system cannot tell who is at the other end of a socket (no SO_PEERCRED)")
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError as exc:
        raise Refused(f"cannot tell who is at the other end of the socket ({exc})") from None
    return struct.unpack("3i", raw)


def check_peer(sock: socket.socket, who: str) -> int:
    """Raise Refused unless the process at the other end of ``sock`` runs as this uid; its pid."""
    pid, uid, _gid = peer_credentials(sock)
    if uid != os.getuid():
        raise Refused(f"the {who} at the other end of the socket runs as uid {uid}, not {os.getuid()}")
    return pid


def _lock_path(address: str) -> str:
    return address.removesuffix(".sock") + ".lock"


def _connect(address: str) -> socket.socket:
    """A connection to the server at ``address``; Refused (nothing sent) if it is not this user's."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address)
        check_peer(sock, "warm server")
    except BaseException:
        sock.close()
        raise
    return sock


def _same_file(fd: int, path: str) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _take_lock(path: str) -> int:
    """Hold the start lock (one job starts the server, the others wait for it). Whoever holds it may
    remove it (an exiting server does), so the file locked must still be the one at ``path``."""
    for _ in range(100):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _same_file(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise OSError(f"the start lock {path} kept being replaced")


def _log_tail(path: str) -> str:
    with contextlib.suppress(OSError), open(path, "rb") as log:
        log.seek(max(0, os.fstat(log.fileno()).st_size - 2000))
        lines = log.read().decode(errors="replace").strip().splitlines()
        return lines[-1].strip() if lines else ""
    return ""


def _connect_or_start(address: str) -> socket.socket:
    try:
        return _connect(address)
    except OSError:  # nobody listens (Refused is no OSError: it goes up, and nothing is started)
        pass
    lock_path = _lock_path(address)
    lock = _take_lock(lock_path)
    try:
        try:
            return _connect(address)
        except OSError:
            pass
        stem = Path(address).name.removesuffix(".sock")
        log_fd, log_path = tempfile.mkstemp(prefix=f"{stem}.", suffix=".log", dir=Path(address).parent)
        try:  # the server removes its log and the lock when it exits; until it listens they are ours
            server = subprocess.Popen([sys.executable, "-c", _SERVER_CODE, __file__, address, log_path],
                                      env=job_environment(), stdin=subprocess.DEVNULL, stdout=log_fd,
                                      stderr=log_fd, start_new_session=True, close_fds=True)
        except BaseException:
            os.close(log_fd)
            _remove(log_path, lock_path)
            raise
        os.close(log_fd)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and server.poll() is None:
            try:
                return _connect(address)
            except OSError:
                time.sleep(0.05)
        if server.poll() is None:
            raise OSError(f"the warm server did not answer in {START_TIMEOUT_S:.0f} s (its log: {log_path})")
        tail = _log_tail(log_path)
        _remove(log_path, lock_path)  # a server that died leaves nothing behind
        raise OSError(f"the warm server exited with status {server.returncode}" + (f": {tail}" if tail else ""))
    finally:
        os.close(lock)


def _remove(*paths: str) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _run_remote(sock: socket.socket) -> int | None:
    """Send this job (argv, cwd, allowed env, stdio) to the server; forward signals; return the child's
    status, or None if the server never started it (the job then runs here)."""
    request = json.dumps({"argv": sys.argv, "cwd": os.getcwd(), "env": job_environment(),
                          "rlimits": job_limits(), "cgroup": own_cgroup()}).encode() + b"\n"
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    reader = sock.makefile("rb")
    try:
        sock.settimeout(START_TIMEOUT_S)  # a server that does not answer at once is stuck, not busy
        socket.send_fds(sock, [request], [0, 1, 2])
        first = json.loads(reader.readline())
        if "refused" in first:
            print(f"warm worker refused this job ({first['refused']})", file=sys.stderr)
            return None
        pid = first["pid"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if type(pid) is not int or pid <= 1 or pid == os.getpid():  # never signal a group, init or ourselves
        return None
    sock.settimeout(None)  # the job itself may run for hours

    def forward(signum, _frame):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for signum in _STOP_SIGNALS:
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


def _idle_s() -> float:
    try:
        return float(os.environ.get(IDLE_ENV, IDLE_S))
    except ValueError:
        return IDLE_S


def _serve(address: str, log_path: str | None = None) -> None:
    """Serve jobs at ``address`` until idle or stopped (SIGTERM, SIGINT, SIGHUP). Once it listens, the
    server owns its socket, ``log_path`` and the start lock, and removes them as it exits; before that
    (a failed start) they are left to the job that started it, which reads the log."""
    me = os.getpid()

    def stop(signum, _frame):
        if os.getpid() != me:  # never the server's clean-up in a forked child
            os._exit(128 + signum)
        raise SystemExit(128 + signum)

    for signum in _STOP_SIGNALS:
        signal.signal(signum, stop)
    idle_s = _idle_s()
    server = None
    bound = None  # (device, inode) of the socket file this server made
    try:
        for name in PRELOAD:
            with contextlib.suppress(Exception):
                __import__(name)
        _private_dir(Path(address).parent)  # the job checked it; so does the server, before binding
        with contextlib.suppress(FileNotFoundError):
            os.unlink(address)  # a socket left by a server that was killed (the starting job holds the lock)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(address)
        st = os.lstat(address)
        bound = (st.st_dev, st.st_ino)
        server.listen(16)
        server.setblocking(False)
        _loop(server, idle_s)
    finally:
        for signum in _STOP_SIGNALS:  # a second signal must not cut the clean-up short
            signal.signal(signum, signal.SIG_IGN)
        if server is not None:
            server.close()
        if bound is not None:
            _clean_up(address, bound, log_path)


def _loop(server: socket.socket, idle_s: float) -> None:
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    running: dict[int, socket.socket] = {}  # child pid -> the job's connection
    idle_since = time.monotonic()
    while running or time.monotonic() - idle_since < idle_s:
        for _key, _ in selector.select(timeout=0.05):
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            try:
                client = check_peer(conn, "job")
            except Refused as exc:  # before reading a byte of it
                print(f"refused a connection: {exc}", file=sys.stderr, flush=True)
                conn.close()
                continue
            conn.settimeout(10.0)  # a job sends its request at once; never let one block the server
            pid = _start_child(conn, server, client)
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


def _clean_up(address: str, bound: tuple[int, int], log_path: str | None) -> None:
    """Remove this server's socket (if it still is this server's), its log, and the start lock (taken
    first: a job that holds it is starting the next server, which will remove it in turn)."""
    with contextlib.suppress(OSError):
        st = os.lstat(address)
        if (st.st_dev, st.st_ino) == bound:
            os.unlink(address)
    if log_path:
        _remove(log_path)
    lock_path = _lock_path(address)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)
        if _same_file(fd, lock_path):
            _remove(lock_path)
    finally:
        os.close(fd)


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 3)
    while not data.endswith(b"\n"):
        more = conn.recv(1 << 16)
        if not more:
            raise ConnectionError("request cut short")
        data += more
    return json.loads(data), fds


def _refuse(conn: socket.socket, fds: list[int], why: str) -> None:
    """Send the job back to run in its own process, with the reason."""
    for fd in fds:
        os.close(fd)
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps({"refused": why}).encode() + b"\n")
    conn.close()


def _start_child(conn: socket.socket, server: socket.socket, client: int) -> int | None:
    try:
        request, fds = _receive(conn)
    except (OSError, ValueError, ConnectionError):
        conn.close()
        return None
    conn.settimeout(None)
    why = refusal(request, own_cgroup())
    if why is not None:
        _refuse(conn, fds, why)
        return None
    ready_r, ready_w = os.pipe()  # the child says here whether it took the job's limits
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)  # until the child has its own handlers
    pid = os.fork()
    if pid == 0:  # the child: become the job, and never return into the server's loop
        code = 1
        try:
            for signum in (*_STOP_SIGNALS, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            server.close()
            os.close(ready_r)
            try:
                apply_limits(request["rlimits"])
            except OSError as exc:
                os.write(ready_w, str(exc).encode()[:4000] or b"?")
                os._exit(1)
            os.write(ready_w, b"\0")
            os.close(ready_w)
            code = _child(conn, request, fds, client)
        except BaseException:  # noqa: BLE001
            with contextlib.suppress(Exception):
                traceback.print_exc()
        finally:
            os._exit(code)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    os.close(ready_w)
    try:
        ready = os.read(ready_r, 4096)  # at once: a few setrlimit calls, or b"" if the child died
    finally:
        os.close(ready_r)
    if ready != b"\0":
        os.waitpid(pid, 0)
        _refuse(conn, fds, ready.decode(errors="replace") or "the fork ended before the job started")
        return None
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    except OSError:
        os.kill(pid, signal.SIGTERM)
    return pid


def _child(conn: socket.socket, request: dict, fds: list[int], client: int) -> int:
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    # nothing of the server's: its listening socket, other jobs' connections, its selector
    close_other_fds({0, 1, 2, conn.fileno()})
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ[CHILD_ENV] = "1"
    os.environ[CLIENT_PID_ENV] = str(client)  # the job's own process (SO_PEERCRED): its wall time starts there
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


if __name__ == "__warm__":  # started by _connect_or_start as: python -c <run this file> <this file> <address> <log>
    _serve(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
