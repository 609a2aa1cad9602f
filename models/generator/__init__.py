"""StyleGAN2-style generator G and multi-scale PatchGAN discriminator D (TH-PAD supplement §I.2)."""

from thpad.models.generator.discriminator import (
    DISCRIMINATOR_PRESETS,
    DiscriminatorConfig,
    MultiscaleDiscriminator,
    ScaleOutput,
)
from thpad.models.generator.synthesis import GENERATOR_PRESETS, Generator, GeneratorConfig

__all__ = [
    "DISCRIMINATOR_PRESETS",
    "GENERATOR_PRESETS",
    "DiscriminatorConfig",
    "Generator",
    "GeneratorConfig",
    "MultiscaleDiscriminator",
    "ScaleOutput",
]
