"""Stage 2, train_disentangle: the talking head (E_id, E_v, MLP_a2l, G) against D."""
