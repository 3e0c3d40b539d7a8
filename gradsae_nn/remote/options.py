"""Where and how a run talks to an NDIF server, and what it sent (`RemoteOptions`, `RemoteStats`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

API_KEY_ENV = "NDIF_API_KEY"


@dataclass
class RemoteStats:
    """Requests sent so far and their payload sizes (the serialized, compressed request body, in bytes)."""

    requests: int = 0
    payload_bytes: list[int] = field(default_factory=list)
    retries: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        sizes = self.payload_bytes
        return {"requests": self.requests, "retries": self.retries, "seconds": round(self.seconds, 1),
                "payload_bytes_total": sum(sizes), "payload_bytes_max": max(sizes, default=0)}


@dataclass(frozen=True)
class RemoteOptions:
    """Where and how to run traces remotely.

    host: NDIF API URL; None = nnsight's configured host (`NDIF_HOST`, its config file, or https://api.ndif.us).
    blocking: True = wait on nnsight's websocket; False = submit, then poll (`blocking=False`) while a
        progress line shows the job's status; None = blocking for short requests (scoring), polling for
        long ones (generation).
    retries: attempts after the first for transient failures, with backoff `backoff_s · 2^i`.
    timeout_s: how long the server may take to accept a connection or answer one HTTP request or the
        websocket handshake; past it the attempt is a transient failure (so a host that accepts and never
        answers ends in exit 3, not a hang). A running job's own duration is not bounded by it.
    verbose: nnsight's per-request lines (payload and result bytes, every status); server tracebacks.
    """

    host: str | None = None
    blocking: bool | None = None
    retries: int = 4
    backoff_s: float = 1.0
    timeout_s: float = 30.0
    verbose: bool = False
    stats: RemoteStats = field(default_factory=RemoteStats, compare=False)

    @property
    def resolved_host(self) -> str:
        from nnsight import CONFIG

        return (self.host or CONFIG.API.HOST).rstrip("/")
