"""Remote failures: which exception means what (`classify`), one line each, and bounded waits.

Refused connections and unknown hosts fail at once; transient failures (connection reset, timeouts, HTTP
408/425/429/5xx) are worth retrying; a server's reply is shown as one line, whole only with `-v`.
"""

from __future__ import annotations

import contextlib
import re
import socket
from typing import Iterator

from ..errors import RemoteFailure
from .options import API_KEY_ENV, RemoteOptions

RETRYABLE_STATUS = (408, 425, 429, 500, 502, 503, 504)


@contextlib.contextmanager
def network_timeouts(seconds: float) -> Iterator[None]:
    """Bound every wait on the server by `seconds` while inside: nnsight's HTTP connect/read timeouts (module
    constants of its remote backend, read at each request) and websocket-client's default socket timeout (its
    handshake and the first message; nnsight's status loop treats later timeouts as "still running").

    Pitfall: nnsight opens its websocket with no timeout and reads HTTP replies for up to 600 s, so a host
    that accepts the connection and never answers hangs a run forever. Checked by `tests/test_faults_remote.py`
    against a silent server on 127.0.0.1.
    """
    import websocket
    from nnsight.intervention.backends import remote

    saved = {name: getattr(remote, name) for name in ("_CONNECT_TIMEOUT", "_READ_TIMEOUT") if hasattr(remote, name)}
    saved_ws = websocket.getdefaulttimeout()
    try:
        for name in saved:
            setattr(remote, name, seconds)
        websocket.setdefaulttimeout(seconds)
        yield
    finally:
        for name, value in saved.items():
            setattr(remote, name, value)
        websocket.setdefaulttimeout(saved_ws)


def classify(exc: BaseException, options: RemoteOptions) -> RemoteFailure | None:
    """The `RemoteFailure` for an exception raised by a remote request, or None if it is not a remote failure.

    `transient` failures are worth retrying: connection reset or dropped, timeouts, HTTP 408/425/429/5xx.
    A refused connection (nothing listens), an unknown host, a non-NDIF answer, an HTTP 4xx or a
    server-side exception are not.
    """
    import httpx
    import websocket
    from nnsight.intervention.backends.remote import RemoteError

    host = options.resolved_host
    hint = f"check --ndif-host / NDIF_HOST ({host})"
    cause = exc.__cause__ if isinstance(exc, RemoteError) and exc.__cause__ is not None else exc
    if isinstance(exc, RemoteError) and exc.__cause__ is None:
        text = str(exc).strip()
        lines = [line for line in text.splitlines() if line.strip()]
        last = lines[-1].strip() if lines else "unknown error"
        more = "" if options.verbose else " (rerun with -v for the server's traceback)"
        return RemoteFailure(f"the NDIF server at {host} failed the request: {last}{more}", detail=text,
                             show_detail=options.verbose)
    if isinstance(cause, httpx.HTTPStatusError):
        code = cause.response.status_code
        body = str(exc) if isinstance(exc, RemoteError) else cause.response.text
        detail = one_line(body) + ("" if options.verbose or "\n" not in body.strip() else " (rerun with -v for the "
                                                                                          "whole reply)")
        if code in (401, 403):
            return RemoteFailure(f"NDIF at {host} refused the API key (HTTP {code}): set {API_KEY_ENV}; {detail}",
                                 detail=body, show_detail=options.verbose)
        return RemoteFailure(f"NDIF at {host} answered HTTP {code}: {detail}", detail=body,
                             show_detail=options.verbose, transient=code in RETRYABLE_STATUS)
    if isinstance(cause, websocket.WebSocketBadStatusException):
        code = cause.status_code
        return RemoteFailure(f"{host} answered HTTP {code} on /subscribe: " +
                             ("the server is unavailable" if code in RETRYABLE_STATUS else f"is it an NDIF server? {hint}"),
                             transient=code in RETRYABLE_STATUS)
    if _refused(cause):
        return RemoteFailure(f"cannot reach NDIF at {host}: connection refused (nothing listens there); "
                             f"start the server or {hint}")
    if isinstance(cause, socket.gaierror) or "Name or service not known" in str(cause):
        return RemoteFailure(f"cannot reach NDIF at {host}: unknown host; {hint}")
    if isinstance(cause, (httpx.TimeoutException, websocket.WebSocketTimeoutException, TimeoutError, socket.timeout)):
        return RemoteFailure(f"NDIF at {host} did not answer within {options.timeout_s:g} s (--ndif-timeout): "
                             f"{type(cause).__name__}", transient=True)
    if isinstance(cause, (httpx.TransportError, websocket.WebSocketException, ConnectionError, TimeoutError,
                          socket.timeout, OSError)):
        return RemoteFailure(f"lost the connection to NDIF at {host}: {type(cause).__name__}: {cause}", transient=True)
    return None


def one_line(text: str, width: int = 160) -> str:
    """A server's reply as one short line: HTML tags (and scripts, styles) dropped, whitespace collapsed,
    cut at `width` characters."""
    plain = re.sub(r"<(script|style)\b.*?</\1>|<[^>]+>", " ", text, flags=re.DOTALL | re.IGNORECASE)
    flat = " ".join(plain.split()) or "(empty reply)"
    return flat if len(flat) <= width else flat[:width - 1] + "…"


def _refused(exc: BaseException) -> bool:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ConnectionRefusedError) or "Connection refused" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
