"""Fuzzing the format handlers with atheris (see fuzz/README.md)."""
