"""thpad: one-shot talking heads with an audio-conditioned diffusion prior over head motion (Yu et al., ICCV 2023).

The installed package is one namespace over the repository's top-level folders (see pyproject.toml):
``thpad.models`` (networks and the diffusion process), ``thpad.storage`` (URIs, shards, checkpoints, tracking),
``thpad.pipelines`` (the Ray programs and generation) and ``thpad.stages`` (the ``thpad`` command and one entry point
per DVC stage). The modules in this folder are leaves that every layer may import. Importing ``thpad`` itself stays
cheap: it loads no torch, Ray or MLflow until ``load`` is called.

Example:
    >>> import thpad
    >>> model = thpad.load("data/bundle")             # a bundle folder (``dvc repro bundle`` writes one)
    >>> result = model.generate("face.jpg", "speech.wav", seed=3)
    >>> result.trajectory.shape                        # (frames, 42): the sampled non-lip codes
    >>> result.save("talk.mp4")                        # streams the mp4 and writes talk.json beside it
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from thpad.pipelines.generate.model import TalkingHeadModel

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(model: str = "data/bundle", device: str = "cpu") -> TalkingHeadModel:
    """Load a model bundle once, verified (every file's sha256 and the schema version), ready to ``generate``.

    Args:
        model: a bundle folder (default: the embedded default's ``data/bundle``).
        device: torch device for the networks ("cpu", "cuda", ...).
    Returns:
        A ``TalkingHeadModel``.
    Raises:
        thpad.storage.bundle.BundleError: not a bundle, another schema version, or a file altered (named).
    """
    from thpad.pipelines.generate.model import TalkingHeadModel

    return TalkingHeadModel(model, device)
