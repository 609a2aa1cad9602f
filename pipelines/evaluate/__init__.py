"""The evaluation suite of the evaluate stage: clips, sampling, measures, summaries, and the report with its figures."""
