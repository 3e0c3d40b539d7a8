"""Remote execution on an NDIF server: the same kernels as local runs, one request per list of traces.

`run_traces(model, kernel, calls)` is the one seam between local and remote execution (see `client`).
The local NDIF server used to test it lives in `gradsae_nn.ndif_local`.
"""

from .client import (API_KEY_ENV, RemoteOptions, RemoteStats, bypass_hub_lookup, classify, make_backend,
                     prepare_client, retrying, run_summary, run_traces)

__all__ = ["API_KEY_ENV", "RemoteOptions", "RemoteStats", "bypass_hub_lookup", "classify", "make_backend",
           "prepare_client", "retrying", "run_summary", "run_traces"]
