"""Preprocessing: raw VoxCeleb2-layout clips to aligned WebDataset shards on Ray Data (issue 3)."""
