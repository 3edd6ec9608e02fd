"""Invitation text and iCalendar properties for a meeting link (pure)."""

from __future__ import annotations

from typing import Any

__all__ = ["build_invitation", "fold_ical_line", "ical_escape"]


def ical_escape(text: str) -> str:
    """RFC 5545 TEXT escaping."""
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def fold_ical_line(line: str) -> str:
    """Fold a content line at 75 octets (RFC 5545 3.1), never inside a UTF-8 sequence."""
    out: list[str] = []
    current = ""
    size = 0
    for ch in line:
        n = len(ch.encode())
        limit = 75 if not out else 74  # continuation lines start with a space
        if size + n > limit:
            out.append(current)
            current, size = "", 0
        current += ch
        size += n
    out.append(current)
    return "\r\n ".join(out)


def build_invitation(
    *, join_url: str, summary: str | None, provider: str = "mediaserver video meeting"
) -> dict[str, Any]:
    """Ready text for an event description plus iCalendar properties (RFC 7986)."""
    title = summary or "Video meeting"
    text = f"{title}\nJoin the video meeting: {join_url}\n"
    html = (
        f'<p>Join the video meeting: <a href="{_html_attr(join_url)}">'
        f"{_html_text(join_url)}</a></p>"
    )
    conference = f"CONFERENCE;VALUE=URI;FEATURE=VIDEO;LABEL={_param(provider)}:{join_url}"
    description = f"DESCRIPTION:{ical_escape(text)}"
    url = f"URL:{join_url}"
    return {
        "text": text,
        "html": html,
        "ical": {
            "conference": fold_ical_line(conference),
            "url": fold_ical_line(url),
            "description": fold_ical_line(description),
        },
    }


def _param(value: str) -> str:
    """An iCalendar parameter value, quoted when it contains ; : or ,."""
    value = value.replace('"', "'")
    return f'"{value}"' if any(c in value for c in ";:,") else value


def _html_text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _html_attr(s: str) -> str:
    return _html_text(s).replace('"', "&quot;")
