"""streamport: a self-hosted real-time data platform with Quix-compatible APIs."""

from streamport._version import __version__

__all__ = ["__version__"]
