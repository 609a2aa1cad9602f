"""Training stages on Ray Train: the shared harness, the stage configs and one loop per stage (issue 5)."""
