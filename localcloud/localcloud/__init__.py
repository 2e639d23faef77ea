"""A local Hetzner Cloud: the public API on this machine, optionally with real machines behind it."""

__version__ = "0.1.0"
