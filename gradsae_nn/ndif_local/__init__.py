"""A real NDIF on this machine, for tests and demos: `python -m gradsae_nn.ndif_local start|stop|status|run`.

`stack` starts and stops NDIF's own services in a private network namespace (`netns`), in a Python 3.12
environment of their own (`env`), with a CPU model actor (`cpu_actor`); see `stack`'s docstring.
"""

from .stack import DEFAULT_API_PORT, MODEL_NAME, client_env, start, status, stop
from .state import State, host_url, load_state

__all__ = ["DEFAULT_API_PORT", "MODEL_NAME", "State", "client_env", "host_url", "load_state", "start", "status", "stop"]
