"""The diffusion process of the audio-to-non-lip prior P_a2nl, kept apart from the network (DiT/EDM style).

``process``: DiffusionConfig, cosine schedule, q_sample and the training loss (TH-PAD supplement §I.3-§I.4).
``sampling``: SamplerConfig, classifier-free guidance (paper Eq. 10), DDPM and DDIM with mask editing.
``chaining``: chained sampling of sequences longer than the 128-frame window (supplement Fig. I).
"""

from thpad.models.diffusion.chaining import chunk_spans, iter_chained_chunks, stitch_chunks
from thpad.models.diffusion.process import (
    BETA_SCHEDULES,
    Denoiser,
    DiffusionConfig,
    NoiseSchedule,
    paste_known,
    q_sample,
    sample_known_mask,
    training_loss,
)
from thpad.models.diffusion.sampling import (
    SAMPLERS,
    SamplerConfig,
    ddim_sample,
    ddim_timesteps,
    ddpm_sample,
    guided_x0,
    rescale_guided,
    sample,
    sample_long,
)

__all__ = [
    "BETA_SCHEDULES",
    "SAMPLERS",
    "Denoiser",
    "DiffusionConfig",
    "NoiseSchedule",
    "SamplerConfig",
    "chunk_spans",
    "ddim_sample",
    "ddim_timesteps",
    "ddpm_sample",
    "guided_x0",
    "paste_known",
    "q_sample",
    "rescale_guided",
    "sample",
    "iter_chained_chunks",
    "sample_known_mask",
    "sample_long",
    "stitch_chunks",
    "training_loss",
]
