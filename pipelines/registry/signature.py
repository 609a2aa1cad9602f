"""The registered model's MLflow signature, written explicitly (never inferred, which would run ``predict`` at log
time): binary portrait and speech columns, optional keyframe columns, the generation params and the outputs.

Photos are input columns, never params: MLflow's ``ParamSpec`` has no binary type. Keyframes are two array columns
so that a row may pin any number of frames (an empty list pins none) and rows with and without keyframes can share
one request. ``video`` is declared binary: with ``samples`` > 1 each row holds a list of mp4s instead (MLflow does
not enforce the output schema).
"""

from __future__ import annotations

from mlflow.models.signature import ModelSignature
from mlflow.types.schema import Array, ColSpec, DataType, ParamSchema, ParamSpec, Schema

from thpad.pipelines.registry.requests import (
    AUDIO,
    IMAGE,
    KEYFRAME_FRAMES,
    KEYFRAME_IMAGES,
    PARAM_TYPES,
    TRAJECTORY,
    VIDEO,
)

PARAM_DTYPES = {int: DataType.long, float: DataType.double, str: DataType.string}
PARAM_DEFAULTS = {"samples": 1, "prior": "diffusion"}  # every other param defaults to None: the bundle's value


def model_signature() -> ModelSignature:
    """The signature every logged thpad model carries (inputs, outputs and params)."""
    inputs = Schema([
        ColSpec(DataType.binary, IMAGE),
        ColSpec(DataType.binary, AUDIO),
        ColSpec(Array(DataType.binary), KEYFRAME_IMAGES, required=False),
        ColSpec(Array(DataType.long), KEYFRAME_FRAMES, required=False),
    ])
    outputs = Schema([ColSpec(DataType.binary, VIDEO), ColSpec(DataType.string, TRAJECTORY)])
    params = ParamSchema([ParamSpec(name, PARAM_DTYPES[kind], PARAM_DEFAULTS.get(name))
                          for name, kind in PARAM_TYPES.items()])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)
