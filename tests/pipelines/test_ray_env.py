"""``ensure_ray``'s own local Ray: a process that started one leaves no session folder behind."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = ("import ray; from thpad.pipelines.ray_env import RayConfig, ensure_ray; "
         "ensure_ray(RayConfig(address='', num_cpus=1)); "
         "import os; print('DURING', len(os.listdir(os.environ['THPAD_RAY_TMP']))); "
         "print('TASK', ray.get(ray.remote(lambda: 41 + 1).remote()))")


def test_a_local_ray_removes_its_session_folder_at_exit() -> None:
    """A real local Ray (not the test session's shared head) in a child process: its session folder exists
    while it runs and is gone once the process exits. The parent folder is a short one under /tmp, since Ray's
    unix socket paths must stay under 108 bytes (pytest's tmp_path can be longer)."""
    with tempfile.TemporaryDirectory(prefix="thpad-t-", dir="/tmp") as parent:
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"THPAD_RAY_TMP": parent}
        done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "DURING 1" in done.stdout and "TASK 42" in done.stdout
        assert list(Path(parent).iterdir()) == []


def test_local_workers_silence_only_the_placement_group_cleaners_warnings() -> None:
    import logging

    from thpad.pipelines.ray_env import PG_CLEANER_LOGGER, quiet_local_worker

    logger = logging.getLogger(PG_CLEANER_LOGGER)
    before = logger.level
    try:
        quiet_local_worker()
        assert not logger.isEnabledFor(logging.WARNING) and logger.isEnabledFor(logging.ERROR)
    finally:
        logger.setLevel(before)
