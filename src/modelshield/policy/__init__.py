"""Policy: what the user trusts, denies and tolerates; the default policy ships as data."""

from modelshield.policy.model import Policy

__all__ = ["Policy"]
