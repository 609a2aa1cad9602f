"""Stage 1, train_contrastive: E_a and E_v under the CLIP-style loss."""
