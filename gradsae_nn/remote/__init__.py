"""Remote execution on an NDIF server: the same kernels as local runs, one request per list of traces.

`run_traces(model, kernel, calls)` is the one seam between local and remote execution (see `client`);
`options` says where and how, `failures` what a failure means (one line each) and bounds every wait.
The local NDIF server used to test it lives in `gradsae_nn.ndif_local`.
"""

from .client import bypass_hub_lookup, make_backend, prepare_client, retrying, run_summary, run_traces
from .failures import classify, network_timeouts, one_line
from .options import API_KEY_ENV, RemoteOptions, RemoteStats

__all__ = ["API_KEY_ENV", "RemoteOptions", "RemoteStats", "bypass_hub_lookup", "classify", "make_backend",
           "network_timeouts", "one_line", "prepare_client", "retrying", "run_summary", "run_traces"]
