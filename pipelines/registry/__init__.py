"""The MLflow registry: the bundle as a pyfunc model (request parsing, the model, its signature and packaging), its
registration under an alias, and the evidence gate that decides whether a new version takes ``champion``."""
