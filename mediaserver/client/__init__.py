"""Python client SDK for mediaserver (signalling protocol v1)."""

from .sdk import ClientError, MeetingClient, RemoteTrack

__all__ = ["ClientError", "MeetingClient", "RemoteTrack"]
