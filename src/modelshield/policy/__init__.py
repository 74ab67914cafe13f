"""Policy: what the user trusts, denies and tolerates; the default policy ships as data."""

from modelshield.policy.apply import apply_policy
from modelshield.policy.loader import load_policy
from modelshield.policy.model import Policy, SuppressionRule

__all__ = ["Policy", "SuppressionRule", "apply_policy", "load_policy"]
