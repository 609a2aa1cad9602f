"""Stages 4 and 5: the audio-to-non-lip priors (diffusion and auto-regressive) over the extracted features."""
