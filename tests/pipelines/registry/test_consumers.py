"""Consumers that never see this repository: a fresh process that knows only the tracking URI loads
``models:/NAME@candidate`` with plain MLflow, and MLflow's own scoring server answers real HTTP requests."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import av
import pytest

CONSUMER = '''
import io, json, sys
import av, mlflow.pyfunc, pandas as pd

image, audio = (open(p, "rb").read() for p in sys.argv[1:3])
model = mlflow.pyfunc.load_model(sys.argv[3])
out = model.predict(pd.DataFrame({"image": [image], "audio": [audio]}), params={"seed": 4})
with av.open(io.BytesIO(out["video"][0])) as container:
    frames = sum(1 for _ in container.decode(video=0))
print(json.dumps({"frames": frames, "sidecar": json.loads(out["trajectory"][0]),
                  "thpad": sys.modules["thpad"].__file__}))
'''


def only_tracking_env(registered) -> dict[str, str]:
    """The tracking URI and nothing else of ours (telemetry off, as everywhere in the tests)."""
    return {"MLFLOW_TRACKING_URI": registered.tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}


@pytest.mark.slow
def test_plain_mlflow_in_a_fresh_process_gets_a_video(registered, portrait_path, speech_path, tmp_path) -> None:
    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER)
    uri = f"models:/{registered.name}@candidate"
    run = subprocess.run([sys.executable, str(script), str(portrait_path), str(speech_path), uri],
                         env=only_tracking_env(registered), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["frames"] == report["sidecar"]["num_frames"] > 25
    assert report["sidecar"]["settings"]["seed"] == 4
    # thpad came with the model (its ``code`` folder), not from this checkout.
    assert Path(report["thpad"]).is_relative_to(registered.local_path / "code")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, payload: dict, timeout: float = 300) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_for_ping(base: str, server: subprocess.Popen, log: Path, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the server exited: {log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"{base}/ping", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    raise AssertionError(f"no /ping within {seconds} s: {log.read_text()[-3000:]}")


def stop(server: subprocess.Popen) -> None:
    """Stop the server's process group (it started uvicorn in it), by its id."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@pytest.mark.slow
def test_mlflow_scoring_server_returns_an_mp4_and_a_400_for_bad_input(registered, portrait_path, speech_path,
                                                                        tmp_path) -> None:
    port, log = free_port(), tmp_path / "server.log"
    env = {**only_tracking_env(registered), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}  # uvicorn
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{registered.name}@candidate",
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1", "-t", "300"]
    with log.open("w") as out:
        server = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_ping(base, server, log)
        bad = {"dataframe_split": {"columns": ["image", "audio"],
                                   "data": [[base64.b64encode(b"\xff\xd8 not a photo").decode(), b64(speech_path)]]}}
        status, body = post(f"{base}/invocations", bad)
        assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "photo is not an image Pillow can read" in body["message"]
        assert "stack_trace" not in body and "Traceback" not in body["message"]
        good = {"dataframe_split": {"columns": ["image", "audio"], "data": [[b64(portrait_path), b64(speech_path)]]},
                "params": {"seed": 2}}
        status, body = post(f"{base}/invocations", good)  # the server keeps serving after a bad request
        assert status == 200, body
        (prediction,) = body["predictions"]
        with av.open(io.BytesIO(base64.b64decode(prediction["video"]))) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert frames == json.loads(prediction["trajectory"])["num_frames"] > 25
    finally:
        stop(server)
