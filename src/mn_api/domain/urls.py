"""URLs as the gateway shows and logs them: never with the credentials they may carry.

A URL can carry a secret in its userinfo (`redis://user:password@host`), in its query
string (`?password=`, `?token=`, `?access_token=`, `?sig=`, ...) or, for a webhook
receiver, in its path. What is shown to people keeps where the URL leads and drops the
rest.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

# Query keys that carry a secret, in whatever spelling a client library accepts: a key
# holding any of these (case and percent-encoding aside) is dropped.
SECRET_KEYS = (
    "password", "passwd", "pass", "pwd", "token", "secret", "auth", "credential", "key",
    "sig", "signature", "session", "cookie",
)  # fmt: skip
# A URL inside free text: scheme://, then everything up to a space or a quote.
_URL_IN_TEXT = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^\s\"'<>]+)")


_PORT = re.compile(r":\d*$")
_AUTHORITY_END = re.compile(r"[/?#]")


def _without_userinfo(rest: str) -> str:
    """`user:password@host/path` as `host/path`. The userinfo ends at the last `@` of the
    authority; a password holding an unencoded `/` (which ends the authority early) is
    told by a `:` that no port follows, and then the last `@` before the query ends it."""
    end = _AUTHORITY_END.search(rest)
    authority, path = (rest[: end.start()], rest[end.start() :]) if end else (rest, "")
    _userinfo, at, host = authority.rpartition("@")
    if at:
        return f"{host}{path}"
    if ":" in authority and not _PORT.search(authority):
        before_query = re.split(r"[?#]", rest, maxsplit=1)[0]
        _userinfo, at, after = before_query.rpartition("@")
        if at:
            return after + rest[len(before_query) :]
    return rest


def without_credentials(url: str) -> str:
    """The URL with no user name or password, and none of the query parameters that
    carry a secret; the fragment goes too. Text that is no URL is given back as it was."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest = rest.partition("#")[0]
    rest, question, query = rest.partition("?")
    shown = f"{scheme}://{_without_userinfo(rest)}"
    if not question:
        return shown
    kept = [pair for pair in query.split("&") if pair and not _secret_key(pair)]
    return f"{shown}?{'&'.join(kept)}" if kept else shown


def _secret_key(pair: str) -> bool:
    key = unquote(pair.partition("=")[0]).lower()
    return any(word in key for word in SECRET_KEYS)


def scrub_urls(text: str) -> str:
    """Free text (a log line, an error) with every URL in it shown without userinfo and
    with its query string as `?redacted`."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(_scrubbed, text)


def _scrubbed(match: re.Match[str]) -> str:
    found = match.group(2)
    url = found.rstrip(".,;:)]")  # the sentence's punctuation, not the URL's
    rest = _without_userinfo(url)
    where, question, _query = rest.partition("?")
    where = where.partition("#")[0]
    return f"{match.group(1)}{where}{'?redacted' if question else ''}{found[len(url) :]}"
