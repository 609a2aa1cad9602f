"""Measures shared by training validation and evaluation: Fréchet distances and gesture measures of motion,
linear probes, retrieval scores."""
