"""A stand-in SLURM for tests: sbatch, squeue, sacct, scancel, sinfo, sacctmgr, scontrol and srun on
one machine, answering in the formats snakemake-executor-plugin-slurm 2.8 parses.

``install(bin_dir, state_dir)`` writes one small shell script per command into ``bin_dir`` (put it
first on PATH); each runs this file with the command's name. State lives in ``state_dir``
(``FAKE_SLURM_DIR``): ``calls.log`` (every command line, one JSON list a line), ``jobs/<id>.json``
(what sbatch was asked for, the job's state and exit code). ``sbatch`` queues the job and returns its
id at once; a detached runner waits for one of ``FAKE_SLURM_SLOTS`` slots (default 2: the node's
cores), runs the ``--wrap`` command with ``/bin/sh`` in the ``-D`` folder with the SLURM_* variables
a job sees, output to ``--output`` (``%j`` replaced), and kills it past ``-t`` minutes (TIMEOUT).
States: PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, CANCELLED.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ("sbatch", "squeue", "sacct", "scancel", "sinfo", "sacctmgr", "scontrol", "srun")
TERMINAL = ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED")


def install(bin_dir: Path, state_dir: Path) -> dict[str, str]:
    """Write the command scripts; return the environment variables that put them to use."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "jobs").mkdir(parents=True, exist_ok=True)
    for name in COMMANDS:
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(__file__)} {name} \"$@\"\n")
        script.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_SLURM_DIR": str(state_dir)}


def calls(state_dir: Path) -> list[list[str]]:
    """Every command the stand-in answered, as argv lists (command name first), in order."""
    path = state_dir / "calls.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def jobs(state_dir: Path) -> list[dict]:
    """Every job sbatch took, by id."""
    return sorted((json.loads(p.read_text()) for p in (state_dir / "jobs").glob("*.json")), key=lambda j: j["id"])


# ------------------------------------------------------------------------------------------ state


def _dir() -> Path:
    return Path(os.environ["FAKE_SLURM_DIR"])


@contextlib.contextmanager
def _locked():
    with open(_dir() / "state.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _job_path(job_id: int | str) -> Path:
    return _dir() / "jobs" / f"{job_id}.json"


def _read(job_id) -> dict | None:
    with contextlib.suppress(FileNotFoundError, ValueError):
        return json.loads(_job_path(job_id).read_text())
    return None


def _write(job: dict) -> None:
    tmp = _job_path(job["id"]).with_suffix(".tmp")
    tmp.write_text(json.dumps(job))
    os.replace(tmp, _job_path(job["id"]))


def _update(job_id, **changes) -> dict:
    with _locked():
        job = _read(job_id)
        if job["state"] in TERMINAL and changes.get("state") not in (None, "CANCELLED"):
            return job  # scancel won: the runner's later verdict does not overwrite it
        job.update(changes)
        _write(job)
        return job


# --------------------------------------------------------------------------------------- commands


def sbatch(args: list[str]) -> int:
    opts, wrap, i = {}, None, 0
    while i < len(args):
        a = args[i]
        if a.startswith("--wrap="):
            wrap = a[len("--wrap="):]
        elif a == "--wrap":
            wrap, i = args[i + 1], i + 1
        elif a.startswith("--") and "=" in a:
            key, value = a[2:].split("=", 1)
            opts[key] = value
        elif a in ("--parsable", "--requeue", "--no-requeue"):
            opts[a[2:]] = True
        elif a.startswith("-"):
            opts[a.lstrip("-")], i = args[i + 1], i + 1
        elif a == "/dev/stdin":
            wrap = sys.stdin.read()
        else:
            print(f"sbatch: error: unexpected argument {a!r}", file=sys.stderr)
            return 1
        i += 1
    if not wrap:
        print("sbatch: error: no command (--wrap or a script on stdin)", file=sys.stderr)
        return 1
    if opts.get("p") not in (None, *_partitions()):
        print(f"sbatch: error: invalid partition specified: {opts['p']}", file=sys.stderr)
        return 1
    with _locked():
        counter = _dir() / "next_id"
        job_id = int(counter.read_text()) if counter.exists() else 1001
        counter.write_text(str(job_id + 1))
        _write({"id": job_id, "name": opts.get("job-name", "wrap"), "comment": opts.get("comment", ""),
                "account": opts.get("A"), "partition": opts.get("p", _partitions()[0]),
                "time_min": opts.get("t"), "mem_mb": opts.get("mem"), "cpus": opts.get("cpus-per-task", "1"),
                "workdir": opts.get("D", os.getcwd()), "output": opts.get("output", "slurm-%j.out").replace("%j", str(job_id)),
                "wrap": wrap, "state": "PENDING", "exit_code": None, "pid": None,
                "submitted": time.time(), "started": None, "ended": None})
    subprocess.Popen([sys.executable, __file__, "_run", str(job_id)], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(job_id if opts.get("parsable") else f"Submitted batch job {job_id}")
    return 0


def _run(job_id: str) -> int:
    """The scheduler's side of one job: wait for a slot, run it, record how it ended."""
    slots = int(os.environ.get("FAKE_SLURM_SLOTS", "2"))
    held = None
    while held is None:
        job = _read(job_id)
        if job["state"] == "CANCELLED":
            return 0
        for n in range(slots):
            fd = open(_dir() / f"slot{n}.lock", "a")  # noqa: SIM115
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = fd
                break
            except BlockingIOError:
                fd.close()
        else:
            time.sleep(0.2)
    env = {**os.environ, "SLURM_JOB_ID": str(job["id"]), "SLURM_JOBID": str(job["id"]),
           "SLURM_JOB_NAME": job["name"], "SLURM_CPUS_PER_TASK": str(job["cpus"]), "SLURM_NTASKS": "1",
           "SLURM_JOB_PARTITION": job["partition"], "SLURM_SUBMIT_DIR": job["workdir"],
           "SLURMD_NODENAME": "fake-node1", "SLURM_CLUSTER_NAME": "fake"}
    if job["account"]:
        env["SLURM_JOB_ACCOUNT"] = job["account"]
    if job["mem_mb"]:
        env["SLURM_MEM_PER_NODE"] = str(job["mem_mb"])
    Path(job["output"]).parent.mkdir(parents=True, exist_ok=True)
    with open(job["output"], "w") as out:
        proc = subprocess.Popen(["/bin/sh", "-c", job["wrap"]], cwd=job["workdir"], env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        if _update(job_id, state="RUNNING", pid=proc.pid, started=time.time())["state"] == "CANCELLED":
            os.killpg(proc.pid, signal.SIGTERM)
        limit = float(job["time_min"]) * 60 if job["time_min"] else None
        try:
            code = proc.wait(timeout=limit)
            state = "COMPLETED" if code == 0 else "FAILED"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code, state = proc.wait(), "TIMEOUT"
    _update(job_id, state=state, exit_code=code, ended=time.time())
    held.close()
    return 0


def _named(args: list[str]) -> list[dict]:
    name = args[args.index("--name") + 1] if "--name" in args else None
    return [j for j in jobs(_dir()) if name is None or j["name"] == name]


def _answer_states(args: list[str]) -> int:
    """One ``<id>|<STATE>`` line per job of the run (``--name``); each answer goes to answers.log."""
    lines = [f"{job['id']}|{job['state']}" for job in _named(args)]
    with _locked(), open(_dir() / "answers.log", "a") as log:
        log.write(json.dumps(lines) + "\n")
    print("\n".join(lines))
    return 0


def answers(state_dir: Path) -> list[list[str]]:
    """What every status query (squeue, sacct --name) answered, in order."""
    path = state_dir / "answers.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def squeue(args: list[str]) -> int:
    return _answer_states(args)


def sacct(args: list[str]) -> int:
    if "-j" in args:  # the plugin's follow-up questions about one failed job
        job_id, _, step = args[args.index("-j") + 1].partition(".")
        job = _read(job_id)
        if job is None:
            return 0
        fmt = " ".join(args).lower()
        if "reason" in fmt and step == "0":
            print("None")
        elif "nodelist" in fmt:
            print("fake-node1")
        return 0
    if "--name" not in args:
        print("sacct: error: the stand-in answers only --name and -j queries", file=sys.stderr)
        return 1
    return _answer_states(args)


def scancel(args: list[str]) -> int:
    for job_id in (a for a in args if not a.startswith("-")):
        job = _read(job_id)
        if job is None or job["state"] in TERMINAL:
            continue
        _update(job_id, state="CANCELLED", ended=time.time())
        if job["pid"]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job["pid"], signal.SIGTERM)
    return 0


def _partitions() -> list[str]:
    return os.environ.get("FAKE_SLURM_PARTITIONS", "gpu cpu").split()


def sinfo(args: list[str]) -> int:
    parts = _partitions()
    print("\n".join((["PARTITION"] if "-h" not in args else []) + [parts[0] + "*", *parts[1:]]))
    return 0


def sacctmgr(args: list[str]) -> int:
    print("\n".join(os.environ.get("FAKE_SLURM_ACCOUNTS", "change_me").split()))
    return 0


def scontrol(args: list[str]) -> int:
    if args[:2] == ["show", "config"]:
        print("MaxArraySize            = 1001\nMinJobAge               = 300 sec")
        return 0
    print(f"scontrol: error: the stand-in does not answer {' '.join(args)}", file=sys.stderr)
    return 1


def srun(args: list[str]) -> int:
    """Within a job: run the step's command here (options are all --opt=value or -n1 forms)."""
    while args and args[0].startswith("-"):
        args = args[1:]
    if not args:
        return 1
    if args[:2] == ["sh", "-s"]:
        return subprocess.call(["/bin/sh", "-s"])
    os.execvp(args[0], args)
    return 1  # not reached


def main(argv: list[str]) -> int:
    name, args = argv[0], argv[1:]
    if name == "_run":
        return _run(args[0])
    with _locked(), open(_dir() / "calls.log", "a") as log:
        log.write(json.dumps([name, *args]) + "\n")
    return globals()[name](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
