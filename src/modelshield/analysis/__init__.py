"""Analyses shared across formats: the pickle machine, callable verdicts, payload signatures."""
