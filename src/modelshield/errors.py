"""The errors modelshield raises at its seams; each carries a message meant for the user."""


class ModelShieldError(Exception):
    """Base class: the CLI catches this and prints its message."""


class UsageError(ModelShieldError):
    """The caller asked for something that cannot be done (missing path, bad option)."""


class PolicyError(ModelShieldError):
    """A policy file or value is invalid."""
