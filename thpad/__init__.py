"""thpad: one-shot talking heads with an audio-conditioned diffusion prior over head motion (Yu et al., ICCV 2023).

The installed package is one namespace over the repository's top-level folders (see pyproject.toml):
``thpad.models`` (networks and the diffusion process), ``thpad.storage`` (URIs, shards, checkpoints, tracking),
``thpad.pipelines`` (the Ray programs) and ``thpad.stages`` (the ``thpad`` command and one entry point per DVC
stage). The modules in this folder are leaves that every layer may import. Importing ``thpad`` itself stays
cheap: it loads no torch, Ray or MLflow.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
