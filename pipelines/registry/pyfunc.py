"""The bundle as an MLflow pyfunc model: ``load_context`` loads the bundle with the project's own loader, ``predict``
turns each request row into talking-head video(s) and the generation sidecar.

MLflow's scoring server turns an ``MlflowException`` into an HTTP status by its error code and any other exception
into a 400 whose body carries the traceback, so ``predict`` raises only ``MlflowException``:

- bad input (``RequestError`` of the request parser, ``InputError`` of the photo and speech loaders: no face, several
  faces under the bundle's ``reject`` policy, silence, corrupt bytes; ``SettingsError`` of the generation options)
  becomes ``INVALID_PARAMETER_VALUE`` (HTTP 400) with the loader's message, which names the input and the fix;
- anything else is a fault of ours: ``INTERNAL_ERROR`` (HTTP 500) with a short error id, and the traceback goes to
  the log under that id, never into the reply.

Several faces are handled as ``TalkingHeadModel.generate`` handles them (the largest is used and a warning logged,
unless the bundle's ``multi_face_policy`` is ``reject``); the sidecar lists the faces not used.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

from thpad.codec import from_dict
from thpad.pipelines.generate.inputs import InputError
from thpad.pipelines.generate.settings import SettingsError
from thpad.pipelines.registry.requests import (
    TRAJECTORY,
    VIDEO,
    Job,
    RequestError,
    ServingConfig,
    parse_params,
    parse_rows,
)

if TYPE_CHECKING:
    from thpad.pipelines.generate.model import TalkingHeadModel
    from thpad.pipelines.generate.result import GenerationResult

log = logging.getLogger(__name__)
BUNDLE_ARTIFACT = "bundle"  # the key of the bundle folder in the logged model's ``artifacts``
BAD_INPUT = (RequestError, InputError, SettingsError)


def invalid(message: str) -> MlflowException:
    """Bad input: HTTP 400 from MLflow's scoring server, with ``message`` (what is wrong and how to fix it)."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def internal(error_id: str) -> MlflowException:
    """A fault of ours: HTTP 500 naming only the error id that the log holds with the traceback."""
    return MlflowException(f"internal error {error_id} while generating: the model failed on this request; the "
                           f"server's log has the details under error id {error_id}", error_code=INTERNAL_ERROR)


def video_bytes(result: GenerationResult, crf: int) -> tuple[list[bytes], str]:
    """Render every sample of ``result`` to mp4 bytes (speech muxed in) and return them with the sidecar JSON.

    Rendering streams through ``GenerationResult.save`` into a temporary folder, so the bytes are exactly those
    ``thpad generate`` writes (without the side-by-side grid of several samples, which nobody would receive).

    Returns:
        (one mp4 per sample, in seed order; the sidecar JSON text: settings, seeds, inputs, trajectories).
    """
    with tempfile.TemporaryDirectory(prefix="thpad-pyfunc-") as tmp:
        written = result.save(Path(tmp) / "video.mp4", crf=crf, with_grid=False)
        per_sample = [path for role, path in written.items() if role not in ("video", "sidecar")]  # OUT-seedS.mp4
        per_sample = per_sample or [written["video"]]  # one sample: OUT itself
        return [Path(p).read_bytes() for p in per_sample], Path(written["sidecar"]).read_text()


def generate_row(model: TalkingHeadModel, job: Job, options: dict[str, Any], cfg: ServingConfig) -> dict[str, Any]:
    """One output row: ``video`` (mp4 bytes, or a list of them when ``samples`` > 1) and ``trajectory`` (JSON)."""
    result = model.generate(job.image, job.audio, max_seconds=cfg.max_seconds, keyframes=job.keyframes, **options)
    videos, sidecar = video_bytes(result, cfg.crf)
    return {VIDEO: videos[0] if len(videos) == 1 else videos, TRAJECTORY: sidecar}


class TalkingHeadPyfunc(mlflow.pyfunc.PythonModel):
    """A registered thpad model: portrait and speech bytes in, mp4 bytes and the trajectory JSON out."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        """Load and verify the bundle from the model's artifacts (weights with ``weights_only=True``; nothing is
        downloaded) and the request bounds from ``model_config``."""
        import thpad

        self.serving = from_dict(ServingConfig, dict(context.model_config or {}))
        self.model = thpad.load(context.artifacts[BUNDLE_ARTIFACT])
        log.info("loaded bundle %s", self.model.bundle.id)

    def predict(self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Generate one row of output per input row.

        Args:
            context: MLflow's model context (unused: everything was loaded in ``load_context``).
            model_input: columns ``image`` and ``audio`` (bytes or base64 strings), optionally ``keyframe_images``
                and ``keyframe_frames`` (lists of the same length).
            params: ``seed``, ``guidance``, ``samples``, ``prior``, ``sampler``, ``steps``; None = the bundle's.
        Returns:
            A DataFrame with ``video`` (mp4 bytes; a list of them, one per sample, when ``samples`` > 1) and
            ``trajectory`` (the sidecar JSON ``thpad generate`` writes beside its video).
        Raises:
            MlflowException: ``INVALID_PARAMETER_VALUE`` for bad input, ``INTERNAL_ERROR`` (with an error id) for
                a fault.
        """
        where = ""  # which row failed, in requests of several rows
        try:
            options = parse_params(params, self.serving)
            jobs = parse_rows(model_input, self.serving)
            rows = []
            for index, job in enumerate(jobs):
                where = f"row {index}: " if len(jobs) > 1 else ""
                rows.append(generate_row(self.model, job, options, self.serving))
        except BAD_INPUT as err:
            raise invalid(f"{where}{err}") from None
        except Exception:
            error_id = uuid.uuid4().hex[:12]
            log.exception("internal error %s while serving a request (%s)", error_id, where.rstrip(": ") or "1 row")
            raise internal(error_id) from None
        return pd.DataFrame(rows, columns=[VIDEO, TRAJECTORY])
