"""Starting or joining Ray: a quiet local Ray on loopback for the embedded default and tests, or an
existing cluster (``RayConfig.address`` or ``RAY_ADDRESS``) at scale, with no code change between.

The local settings follow what was measured on this machine (environment.md): without
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` a local Ray binds every interface and uses the host address;
without ``RAY_AUTH_MODE=disabled`` it writes a token file in the home folder. Those variables are set
only when starting a local Ray, never when joining a cluster.

``start_local_head`` starts a local Ray *head* (``ray start``) with the dashboard and its Jobs API on
loopback and free ports: the tests' shared cluster, and a local stand-in for a cluster when trying
``thpad submit``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # installed with dvc

LOCAL_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DATA_LOG_LEVEL": "ERROR",
    "RAY_DATA_DISABLE_PROGRESS_BARS": "0",
}
# Set by Ray's job manager in a submitted job's driver (ray.init merges the job's runtime env from it).
JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
# The ``ray start`` port options that would otherwise take fixed defaults (6379, 8265, 10001, 52365, ...).
_HEAD_PORT_FLAGS = ("--port", "--dashboard-port", "--ray-client-server-port", "--dashboard-agent-listen-port",
                    "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port",
                    "--node-manager-port", "--object-manager-port")


@dataclass(frozen=True)
class RayConfig:
    """Where Ray runs: ``address`` empty starts a local Ray with ``num_cpus``; else joins a cluster."""

    address: str
    num_cpus: int


def cluster_address(cfg: RayConfig) -> str:
    """The cluster to join ('' for a new local Ray): the config's address, else ``RAY_ADDRESS``."""
    return cfg.address or os.environ.get("RAY_ADDRESS", "")


def ensure_ray(cfg: RayConfig) -> None:
    """Connect to Ray once per process (a second call is a no-op).

    Workers import the project by its editable install; ``PYTHONPATH`` and ``AWS_*`` variables are
    passed to them through the runtime environment so they see the same code and credentials.
    """
    address = cluster_address(cfg)
    if not address:
        os.environ.update(LOCAL_ENV)
    import ray

    if ray.is_initialized():
        return
    if JOB_CONFIG_ENV in os.environ:
        # Inside a Ray job (``thpad submit``) the job's runtime environment already reaches every worker;
        # a driver runtime_env sharing a key with it (PYTHONPATH, AWS_*) would make ray.init fail.
        ray.init(address=address or None, log_to_driver=True)
        return
    env_vars = {k: v for k, v in os.environ.items() if k.startswith("AWS_") or k == "PYTHONPATH"}
    if address:
        ray.init(address=address, runtime_env={"env_vars": env_vars}, log_to_driver=True)
        return
    temp_dir = _short_temp_dir()
    runtime_env = {"env_vars": env_vars, "worker_process_setup_hook": f"{__name__}.{quiet_local_worker.__name__}"}
    ray.init(num_cpus=cfg.num_cpus, include_dashboard=False, runtime_env=runtime_env,
             _temp_dir=temp_dir, configure_logging=True, logging_level="WARNING")
    atexit.register(_remove_local_ray, temp_dir)


# Ray Train's placement-group cleaner (a detached actor per fit) and the warning it logs each time its 1 s poll of
# the controller through the State API fails (placement_group_cleaner.py, ``_monitor_loop``).
PG_CLEANER_LOGGER = "ray.train.v2._internal.execution.controller.placement_group_cleaner"
PG_CLEANER_POLL_FAILURE = "Failed to query Ray Train Controller actor state."


class DropControllerPollFailures(logging.Filter):
    """Drops the placement-group cleaner's poll-failure warning and lets every other record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.WARNING and record.getMessage().startswith(PG_CLEANER_POLL_FAILURE))


def quiet_local_worker() -> None:
    """Ray's worker set-up hook on a local Ray (it runs in every worker process, the cleaner's included).

    A local Ray starts without the dashboard, so the State API that Ray Train's placement-group cleaner polls
    every second is absent: each poll fails at once and logs one warning, hundreds per training stage (Ray has
    no setting for the poll or for the cleaner). The cleaner's job, freeing the placement group of a crashed
    controller, is moot on a Ray that this process stops at exit, so that one warning is dropped; the cleaner's
    other warnings and errors still show. Idempotent.
    """
    logger = logging.getLogger(PG_CLEANER_LOGGER)
    if not any(isinstance(f, DropControllerPollFailures) for f in logger.filters):
        logger.addFilter(DropControllerPollFailures())


def _remove_local_ray(temp_dir: str) -> None:
    """At exit: stop the local Ray this process started, then delete its session folder (Ray's logs and
    sockets, which Ray leaves behind). Registered after ``ray.init``, so it runs before Ray's own exit hook."""
    import ray

    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


def _short_temp_dir() -> str:
    """Ray's unix sockets need a short path; a fresh folder under the system temp dir is short."""
    return tempfile.mkdtemp(prefix="thpad-ray-", dir=os.environ.get("THPAD_RAY_TMP", "/tmp"))


def project_root() -> Path:
    """The repository root (for job submission's working directory)."""
    return Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class LocalHead:
    """A Ray head started by ``start_local_head``: its addresses and what ``stop_local_head`` needs."""

    gcs_address: str  # for ray.init / RayConfig.address
    dashboard_url: str  # for the Jobs API (``thpad submit --address``)
    temp_dir: str
    process: subprocess.Popen = field(compare=False, repr=False)  # ``ray start --block``, leader of the group


def start_local_head(num_cpus: int, timeout_s: float = 120.0) -> LocalHead:
    """Start a quiet Ray head on 127.0.0.1 with the dashboard (Jobs API), every port a free one.

    The head and its jobs see this interpreter's folder first on ``PATH``, so a job's ``python`` is the
    one running here (as an activated virtualenv would have it). Drivers joining it need ``LOCAL_ENV``
    too: without it Ray rewrites 127.0.0.1 to the host address. The head lives as long as this process:
    ``ray start --block`` stays our child, is told to stop when we die (Linux), and takes its processes
    with it; ``stop_local_head`` stops it earlier.
    """
    temp_dir = _short_temp_dir()
    ports = _free_ports(len(_HEAD_PORT_FLAGS))
    flags = [str(x) for pair in zip(_HEAD_PORT_FLAGS, ports, strict=True) for x in pair]
    env = {**os.environ, **LOCAL_ENV,
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--node-ip-address",
           "127.0.0.1", "--dashboard-host", "127.0.0.1", "--include-dashboard", "true", "--num-cpus",
           str(num_cpus), "--temp-dir", temp_dir, "--disable-usage-stats", *flags]
    log_path = Path(temp_dir) / "ray-start.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_stop_with_parent)
    head = LocalHead(f"127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}", temp_dir, proc)
    try:
        _wait_until_started(proc, log_path, timeout_s)
        _wait_for_http(f"{head.dashboard_url}/api/version", timeout_s)
    except BaseException:
        stop_local_head(head)
        raise
    return head


def stop_local_head(head: LocalHead, grace_s: float = 5.0) -> None:
    """Stop every process of ``head`` and remove its temp folder; other Rays on the machine are left
    alone (``ray stop`` would stop them all). ``ray start --block`` is asked to stop its processes
    (SIGTERM); whatever is left after ``grace_s`` is killed."""
    procs = _head_processes(head.process.pid)
    head.process.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=grace_s)
    head.process.wait()  # reaped already, or now
    shutil.rmtree(head.temp_dir, ignore_errors=True)


def _stop_with_parent() -> None:
    """In the ``ray start`` child before exec: SIGTERM it when its parent dies (Linux's PR_SET_PDEATHSIG),
    so a test session killed by a timeout does not leave a Ray head behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _wait_until_started(proc: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while "Ray runtime started" not in log_path.read_text(errors="replace"):
        if proc.poll() is not None:
            raise RuntimeError(f"ray start failed (exit {proc.returncode}):\n{log_path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"ray start did not finish within {timeout_s:.0f} s; see {log_path}")
        time.sleep(0.3)


def _head_processes(pgid: int) -> list[psutil.Process]:
    """The head's process group and all their descendants (Ray workers and job drivers start process
    groups of their own)."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter():
        with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
            if os.getpgid(proc.pid) == pgid:
                found[proc.pid] = proc
                found.update((c.pid, c) for c in proc.children(recursive=True))
    return list(found.values())


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all held open together, so none repeats)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _wait_for_http(url: str, timeout_s: float) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with opener.open(url, timeout=5):
                return
        except OSError as err:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray dashboard at {url} did not answer within {timeout_s:.0f} s") from err
            time.sleep(0.5)
