"""mediaserver: a real-time meeting server with an SFU that never transcodes."""

__all__ = ["__version__"]

__version__ = "0.1.0"
