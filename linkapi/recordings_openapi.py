"""The OpenAPI paths and schemas of the recording calls (merged into linkapi/openapi.py
by :func:`add_recording_api`)."""

from __future__ import annotations

from typing import Any

__all__ = ["add_recording_api"]


def add_recording_api(
    document: dict[str, Any],
    *,
    ok: Any,
    body: Any,
    errors: dict[str, Any],
    link_id: list[dict[str, Any]],
    limit: dict[str, Any],
) -> None:
    rec_id = [
        {
            "name": "recording_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^RE[0-9a-f]{16}$"},
        }
    ]
    file_name = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
    }
    document["paths"].update(
        {
            "/v1/links/{link_id}/recording": {
                "parameters": link_id,
                "post": {
                    "summary": "Start or stop recording the link's running meeting",
                    "requestBody": body("RecordingControl"),
                    "responses": {"200": ok("RecordingState"), **errors},
                },
            },
            "/v1/links/{link_id}/recordings": {
                "parameters": link_id,
                "get": {
                    "summary": "The link's recordings, newest first",
                    "parameters": [limit],
                    "responses": {"200": ok("RecordingList"), **errors},
                },
            },
            "/v1/recordings/{recording_id}": {
                "parameters": rec_id,
                "get": {
                    "summary": "A recording's manifest",
                    "responses": {"200": ok("Recording"), **errors},
                },
                "delete": {
                    "summary": "Delete a recording and its files (not while it records);"
                    " answers with the manifest it had",
                    "responses": {"200": ok("Recording"), **errors},
                },
            },
            "/v1/recordings/{recording_id}/files/{name}": {
                "parameters": [*rec_id, file_name],
                "get": {
                    "summary": "Download one file of a recording (WebM, or Matroska for H264)",
                    "responses": {
                        "200": {
                            "description": "The file",
                            "headers": errors["404"]["headers"],  # the RateLimit-* ones
                            "content": {
                                "video/webm": {},
                                "audio/webm": {},
                                "video/x-matroska": {},
                            },
                        },
                        **errors,
                    },
                },
            },
            "/v1/recordings/{recording_id}/files/{name}/url": {
                "parameters": [*rec_id, file_name],
                "post": {
                    "summary": "A short-lived signed URL to download the file without the key",
                    "responses": {"200": ok("SignedUrl"), **errors},
                },
            },
        }
    )
    track = {
        "type": "object",
        "properties": {
            "participant_id": {"type": "string"},
            "name": {"type": "string"},
            "role": {"type": "string"},
            "kind": {"enum": ["audio", "video"]},
            "publication_id": {"type": "string"},
            "file": {"type": "string"},
            "codec": {"type": "string"},
            "start_offset_seconds": {"type": ["number", "null"]},
            "duration_seconds": {"type": "number"},
            "frames": {"type": "integer"},
            "dropped_frames": {"type": "integer"},
            "lost_packets": {"type": "integer"},
        },
    }
    recording = {
        "type": "object",
        "required": ["id", "link_id", "state", "started_at", "tracks"],
        "properties": {
            "id": {"type": "string"},
            "link_id": {"type": ["string", "null"]},
            "room_id": {"type": "string"},
            "state": {"enum": ["recording", "ready", "interrupted"]},
            "reason": {"type": ["string", "null"]},
            "started_at": {"type": "number"},
            "stopped_at": {"type": ["number", "null"]},
            "started_by": {"type": ["string", "null"]},
            "dropped_by_writer": {"type": "integer"},
            "participants": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "name": {"type": "string"},
                        "role": {"type": "string"},
                    },
                },
            },
            "tracks": {"type": "array", "items": track},
        },
    }
    document["components"]["schemas"].update(
        {
            "RecordingControl": {
                "type": "object",
                "required": ["active"],
                "additionalProperties": False,
                "properties": {"active": {"type": "boolean"}},
            },
            "RecordingState": {
                "type": "object",
                "required": ["active", "recording_id"],
                "properties": {
                    "active": {"type": "boolean"},
                    "recording_id": {"type": ["string", "null"]},
                },
            },
            "Recording": recording,
            "RecordingList": {
                "type": "object",
                "required": ["recordings"],
                "properties": {"recordings": {"type": "array", "items": recording}},
            },
            "SignedUrl": {
                "type": "object",
                "required": ["url", "expires_at"],
                "properties": {"url": {"type": "string"}, "expires_at": {"type": "string"}},
            },
        }
    )
