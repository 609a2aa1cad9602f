"""Feature extraction for the priors: per-clip f_nl and f_a sequences from the trained encoders, on Ray Data
(issue 5, stage ``extract_features``)."""
