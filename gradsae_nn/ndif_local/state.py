"""What `start` records of the local NDIF (`state.json`), so that `stop`, `status` and `run` find it again."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import netns
from .env import root


def state_file() -> Path:
    return root() / "state.json"


@dataclass
class State:
    """What `start` records so that `stop`, `status` and `run` find the stack again."""

    stack_id: str
    holder_pid: int
    holder_start: int
    netns: str
    api_port: int
    s3_port: int
    model_path: str = ""
    model_key: str = ""
    timings_s: dict[str, float] = field(default_factory=dict)
    ready: bool = False

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def holder_alive(self) -> bool:
        """The recorded holder is still that process (not a reused PID) and still owns the namespace."""
        return (netns.start_time(self.holder_pid) == self.holder_start
                and netns.netns_id(self.holder_pid) == self.netns)

    def save(self) -> None:
        state_file().write_text(json.dumps(asdict(self), indent=1))


def load_state() -> State | None:
    try:
        return State(**json.loads(state_file().read_text()))
    except (OSError, ValueError, TypeError):
        return None


def host_url() -> str | None:
    """The host URL of the running, model-ready local NDIF, or None (for tests and scripts)."""
    state = load_state()
    return state.host if state and state.ready and state.holder_alive() else None
