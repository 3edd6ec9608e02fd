"""Link API calls for recordings (docs/linkapi.md, "Recordings").

The recordings of a node are folders under ``recording.directory``, each with its
``manifest.json``: the manifest is the record (state, tracks, files). Downloads need the
tenant's key, or a short-lived signed URL (``/recordings/...?expires=&sig=``, no key)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from mediaserver.app_keys import CONFIG, ROOMS
from mediaserver.recording.control import RecordingRefused, start_recording, stop_recording
from mediaserver.recording.session import MANIFEST

from .problems import ApiProblem
from .routes import SERVICE, _body, _json, _limit, _tenant
from .service import iso

__all__ = ["SIGNED_URL_SECONDS", "setup_recordings", "sign_file"]

SIGNED_URL_SECONDS = 300
NOT_ON_THIS_NODE = (
    "the file is not on this node: a recording's files stay on the node that recorded it"
)
_RECORDING_ID = re.compile(r"^RE[0-9a-f]{16}$")


def _not_found() -> ApiProblem:
    return ApiProblem(404, "not-found", "Not found", "no such recording")


def _root(request: web.Request) -> Path:
    return Path(request.config_dict[CONFIG].recording_directory)


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _public(manifest: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in manifest.items() if k != "tenant_id"}


async def _owned(request: web.Request) -> tuple[Path, dict[str, Any]]:
    """The tenant's recording named in the path (a foreign one is just not found): its
    manifest from the store, its folder on this node."""
    rec_id = request.match_info["recording_id"]
    if not _RECORDING_ID.match(rec_id):
        raise _not_found()
    manifest = await request.app[SERVICE].store.get_recording(rec_id)
    if manifest is None or manifest.get("tenant_id") != _tenant(request).id:
        raise _not_found()
    return _root(request) / rec_id, manifest


def _file_of(folder: Path, manifest: dict[str, Any], name: str) -> Path:
    """Only the files the manifest lists (no path ever comes from the request), and of
    those the ones that were started (a track that never got a frame has no file)."""
    for track in manifest.get("tracks", []):
        if track.get("file") == name and track.get("start_offset_seconds") is not None:
            return folder / name
    raise ApiProblem(404, "not-found", "Not found", "no such file in this recording")


async def control(request: web.Request) -> web.Response:
    """POST /v1/links/{link_id}/recording {"active": bool}."""
    service = request.app[SERVICE]
    link = await service.get_link(_tenant(request), request.match_info["link_id"])
    body = await _body(request, "RecordingControl")
    room = request.config_dict[ROOMS].rooms.get(link.id)
    if room is None or room.closed:
        raise ApiProblem(
            409, "not-running", "Meeting not running", "this link's meeting is not running here"
        )
    if body["active"]:
        try:
            rec = await start_recording(room)
        except RecordingRefused as exc:
            raise ApiProblem(409, "recording-refused", "Recording refused", exc.message) from None
        return _json({"active": True, "recording_id": rec.id})
    stopped = await stop_recording(room, "stopped_by_api")
    if stopped is not None:  # the caller's next read sees it ready
        await service.store.put_recording(stopped.manifest())
    return _json({"active": False, "recording_id": stopped.id if stopped else None})


async def list_for_link(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    link = await service.get_link(_tenant(request), request.match_info["link_id"])
    found = await service.store.list_recordings(link.id, limit=_limit(request))
    return _json({"recordings": [_public(m) for m in found]})


async def get_recording(request: web.Request) -> web.Response:
    folder, manifest = await _owned(request)
    room = request.config_dict[ROOMS].rooms.get(str(manifest.get("link_id")))
    rec = room.recording if room is not None else None
    if rec is not None and rec.id == folder.name:  # running here: as it is now
        manifest = rec.manifest()
    return _json(_public(manifest))


async def delete_recording(request: web.Request) -> web.Response:
    folder, manifest = await _owned(request)
    if manifest.get("state") == "recording":
        raise ApiProblem(409, "recording", "Still recording", "stop the recording first")
    await request.app[SERVICE].store.delete_recording(folder.name)
    await asyncio.to_thread(shutil.rmtree, folder, True)
    return _json(_public(manifest))


async def download(request: web.Request) -> web.StreamResponse:
    folder, manifest = await _owned(request)
    path = _file_of(folder, manifest, request.match_info["name"])
    if not await asyncio.to_thread(path.is_file):
        # listed in the store, but the files stay on the node that recorded it
        raise ApiProblem(404, "not-found", "Not found", NOT_ON_THIS_NODE)
    return _file_response(path)


def _file_response(path: Path) -> web.FileResponse:
    if path.suffix == ".mkv":
        ctype = "video/x-matroska"
    else:
        ctype = "audio/webm" if "-audio-" in path.name else "video/webm"
    return web.FileResponse(path, headers={"Content-Type": ctype})


def sign_file(secret: bytes, rec_id: str, name: str, expires: int) -> str:
    message = f"recording-file:{rec_id}/{name}:{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


async def signed_url(request: web.Request) -> web.Response:
    folder, manifest = await _owned(request)
    name = request.match_info["name"]
    _file_of(folder, manifest, name)
    service = request.app[SERVICE]
    expires = int(time.time()) + SIGNED_URL_SECONDS
    sig = sign_file(service.token_secret, folder.name, name, expires)
    url = f"{service.public_url}/recordings/{folder.name}/{name}?expires={expires}&sig={sig}"
    return _json({"url": url, "expires_at": iso(expires)})


def _signed_download(service: Any) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        """GET /recordings/{recording_id}/{name}?expires=&sig= (no key: the signature)."""
        rec_id, name = request.match_info["recording_id"], request.match_info["name"]
        raw = request.query.get("expires", "")
        expires = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 12 else 0
        given = request.query.get("sig", "")
        wanted = sign_file(service.token_secret, rec_id, name, expires)
        if expires < time.time() or not hmac.compare_digest(given, wanted):
            raise web.HTTPForbidden(text="invalid or expired link")
        if not _RECORDING_ID.match(rec_id):
            raise web.HTTPNotFound()
        folder = _root(request) / rec_id
        manifest = await asyncio.to_thread(_read_manifest, folder)
        if manifest is None:
            raise web.HTTPNotFound()
        try:
            path = _file_of(folder, manifest, name)
        except ApiProblem:
            raise web.HTTPNotFound() from None
        return _file_response(path)

    return handler


def _notice(service: Any) -> Any:
    async def handler(request: web.Request) -> web.Response:
        """GET /j/{slug}/recording: for the join page before joining, the link's
        recording option and whether its meeting is being recorded now (on this node)."""
        link = await service.store.get_link_by_slug(request.match_info["slug"])
        if link is None or link.revoked_at is not None:
            raise web.HTTPNotFound()
        room = request.config_dict[ROOMS].rooms.get(link.id)
        active = room is not None and room.recording is not None and room.recording.active
        policy = str(link.options.get("recording") or "off")
        response = _json({"policy": policy, "active": active})
        response.headers["Cache-Control"] = "no-store"
        return response

    return handler


def setup_recordings(app: web.Application, v1: web.Application, service: Any) -> None:
    r = v1.router
    r.add_post("/links/{link_id}/recording", control)
    r.add_get("/links/{link_id}/recordings", list_for_link)
    r.add_get("/recordings/{recording_id}", get_recording)
    r.add_delete("/recordings/{recording_id}", delete_recording)
    r.add_get("/recordings/{recording_id}/files/{name}", download)
    r.add_post("/recordings/{recording_id}/files/{name}/url", signed_url)
    app.router.add_get("/recordings/{recording_id}/{name}", _signed_download(service))
    app.router.add_get("/j/{slug}/recording", _notice(service))
