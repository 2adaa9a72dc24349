"""Moved to ``infra.settings``; kept until every import names that module."""

from infra.settings import DEFAULTS, SaslMechanism, SecurityProtocol, Settings, read_toml

__all__ = ["DEFAULTS", "SaslMechanism", "SecurityProtocol", "Settings", "read_toml"]
