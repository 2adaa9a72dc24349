"""Foreshock: names an outage while it is still a foreshock."""

__version__ = "0.1.0"
