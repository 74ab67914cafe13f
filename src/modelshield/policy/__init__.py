"""Policy: what the user trusts, denies and tolerates; the default policy ships as data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelshield.policy.model import Policy, SuppressionRule

if TYPE_CHECKING:
    from modelshield.policy.apply import apply_policy
    from modelshield.policy.loader import load_policy

__all__ = ["Policy", "SuppressionRule", "apply_policy", "load_policy"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the TOML reader and the policy pass are not needed to build a Policy.
    if name == "apply_policy":
        from modelshield.policy.apply import apply_policy

        return apply_policy
    if name == "load_policy":
        from modelshield.policy.loader import load_policy

        return load_policy
    raise AttributeError(f"module 'modelshield.policy' has no attribute {name!r}")
