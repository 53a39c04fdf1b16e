"""URL helpers with no dependencies, importable from every floor (config, camera sources, CLI).

Broker and camera URLs may carry a password (``mqtt://user:pw@host``, ``rtsp://admin:pw@10.0.0.5/stream1``);
:func:`redact_url` is the one form in which they may appear in a message, a log line or a health report.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact_url"]


def redact_url(url: str) -> str:
    """Hide the password of a URL before it is printed, logged or reported."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{hostport}"))
