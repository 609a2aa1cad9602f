"""``ensure_ray``'s own local Ray: a process that started one leaves no session folder behind, and its workers drop
Ray Train's placement-group cleaner's poll warning (and nothing else)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """
import logging, os
import ray
from thpad.pipelines.ray_env import PG_CLEANER_LOGGER, PG_CLEANER_POLL_FAILURE, RayConfig, ensure_ray

ensure_ray(RayConfig(address='', num_cpus=1))
print('DURING', len(os.listdir(os.environ['THPAD_RAY_TMP'])))
print('TASK', ray.get(ray.remote(lambda: 41 + 1).remote()))

@ray.remote(num_cpus=0)
class Cleaner:  # started as Ray Train starts its placement-group cleaner: a detached actor
    def passes(self, message):
        logger = logging.getLogger(PG_CLEANER_LOGGER)
        return bool(logger.filter(logger.makeRecord(logger.name, logging.WARNING, "probe", 0, message, (), None)))

cleaner = Cleaner.options(lifetime='detached').remote()
print('CLEANER', ray.get(cleaner.passes.remote(PG_CLEANER_POLL_FAILURE)), ray.get(cleaner.passes.remote('other')))
ray.kill(cleaner)
"""


def test_a_local_ray_removes_its_session_folder_at_exit() -> None:
    """A real local Ray (not the test session's shared head) in a child process: its session folder exists
    while it runs and is gone once the process exits, and a detached actor on it (as Ray Train's placement-group
    cleaner is) drops the cleaner's poll warning. The parent folder is a short one under /tmp, since Ray's unix
    socket paths must stay under 108 bytes (pytest's tmp_path can be longer)."""
    with tempfile.TemporaryDirectory(prefix="thpad-t-", dir="/tmp") as parent:
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"THPAD_RAY_TMP": parent}
        done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "DURING 1" in done.stdout and "TASK 42" in done.stdout
        assert "CLEANER False True" in done.stdout  # the set-up hook reached the actor: only the poll warning drops
        assert list(Path(parent).iterdir()) == []


def test_local_workers_drop_only_the_placement_group_cleaners_poll_warning() -> None:
    """The hook drops exactly the cleaner's "Failed to query Ray Train Controller actor state" warning (one per
    second of every fit on a Ray without the State API); the cleaner's other warnings and errors pass."""
    from thpad.pipelines.ray_env import PG_CLEANER_LOGGER, DropControllerPollFailures, quiet_local_worker

    class Keep(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(f"{record.levelname} {record.getMessage()}")

    logger, keep = logging.getLogger(PG_CLEANER_LOGGER), Keep()
    logger.addHandler(keep)
    try:
        quiet_local_worker()
        quiet_local_worker()  # Ray may run the hook again in the same process: still one filter
        assert sum(isinstance(f, DropControllerPollFailures) for f in logger.filters) == 1
        logger.warning("Failed to query Ray Train Controller actor state. "
                       "State API may be temporarily unavailable. Continuing to monitor.")
        logger.warning("Failed to query placement group table: boom. Assuming placement group is not removed.")
        logger.warning("Failed to exit actor: boom")
        logger.error("Failed to query Ray Train Controller actor state. (an error is never dropped)")
        assert keep.messages == [
            "WARNING Failed to query placement group table: boom. Assuming placement group is not removed.",
            "WARNING Failed to exit actor: boom",
            "ERROR Failed to query Ray Train Controller actor state. (an error is never dropped)",
        ]
    finally:
        logger.removeHandler(keep)
        for f in [f for f in logger.filters if isinstance(f, DropControllerPollFailures)]:
            logger.removeFilter(f)
