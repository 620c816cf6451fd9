"""Reef tentacle: the agent that runs deployment scripts on a worker. Standard library only."""

__version__ = "0.1.0"
