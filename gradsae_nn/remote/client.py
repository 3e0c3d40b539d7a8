"""Remote execution on an NDIF server: the same traces as local runs, sent with nnsight's remote backend.

Every nnsight trace in the package is a *kernel*: a plain function of envoys, tensors and small dataclasses
(`scoring.grad_trace`, `editing.generate_trace`, `generation.greedy_trace`) that opens its own local trace.
`run_traces(model, kernel, calls)` runs a list of such calls: locally one after the other; remotely as one
request, a `session` holding every call, which the server executes as written. Nothing else differs.

What travels (measured in `docs/remote.md`): the kernels' source (`nnsight.register("gradsae_nn")`, since an
installed package is otherwise pickled by reference and the server has no `gradsae_nn`), token ids, and for
edits the edited latents' encoder/decoder rows. The SAE object never does: scoring saves `x` and `∂T/∂x` at
the layer and scores client-side; edits use `splice.EditApplier` in sliced mode, which holds no SAE.

The API key comes only from the environment (`NDIF_API_KEY`, read by nnsight); nothing here stores it.
Failures become one-line `RemoteFailure`s (`failures.classify`): a refused connection or unknown host fails
at once; transient ones (connection reset, timeouts, HTTP 429/5xx) are retried with exponential backoff; a
server's reply or traceback is kept in `detail` (printed with `-v`). Every wait on the server is bounded by
`RemoteOptions.timeout_s` (`failures.network_timeouts`).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

from ..errors import OptionError, RemoteFailure, literal
from .failures import classify, network_timeouts
from .options import API_KEY_ENV, RemoteOptions

if TYPE_CHECKING:
    from ..models import LoadedModel

T = TypeVar("T")


def run_summary(model: "LoadedModel") -> dict[str, Any]:
    """`{"remote": {host, requests, retries, seconds, payload bytes}}` for a remote model's results, else `{}`.

    The host is recorded, the API key never is."""
    if model.remote is None:
        return {}
    return {"remote": {"host": model.remote.resolved_host, **model.remote.stats.as_dict()}}


def prepare_client(options: RemoteOptions, source: str) -> None:
    """One-time client setup before the first remote request for the model at `source`.

    Registers `gradsae_nn` to be sent by value, checks the host URL, turns nnsight's own spinner off (the
    scripts' progress shows the job status instead), and for a local model directory skips nnsight's Hub
    lookup of the id (the server knows the model by that exact path; see docs/remote.md).
    """
    import nnsight
    from nnsight import CONFIG

    host = options.resolved_host
    if not host.startswith(("http://", "https://")):
        raise OptionError(f"{{ndif_host}} {literal(host)} is not a URL; use e.g. https://api.ndif.us or "
                          f"http://127.0.0.1:8289")
    nnsight.register("gradsae_nn")
    CONFIG.APP.REMOTE_LOGGING = False
    if os.path.isdir(source):
        bypass_hub_lookup(source)


def bypass_hub_lookup(path: str | os.PathLike[str]) -> None:
    """Let nnsight mint a remote model key for a local model directory while offline.

    nnsight 0.8.1 canonicalises the repo id with `HfApi().model_info(repo_id)`; for a local path that is a
    failing Hub call. Its cache of canonical ids accepts the path as its own canonical form.
    """
    from nnsight.modeling import huggingface

    huggingface._ID_CACHE[str(path)] = str(path)


def make_backend(lm: Any, options: RemoteOptions, blocking: bool) -> Any:
    """nnsight's `RemoteBackend` for `lm`, recording each payload's size in `options.stats`."""
    from nnsight.intervention.backends.display import StatusDisplay
    from nnsight.intervention.backends.remote import RemoteBackend

    class CountingBackend(RemoteBackend):
        def _serialize(self, tracer: Any) -> bytes:
            blob = super()._serialize(tracer)
            options.stats.requests += 1
            options.stats.payload_bytes.append(len(blob))
            return blob

    backend = CountingBackend(lm.to_model_key(), host=options.resolved_host, api_key=os.environ.get(API_KEY_ENV),
                              env=lm._remoteable_get_env(), blocking=blocking, verbose=options.verbose)
    backend.display = StatusDisplay(enabled=options.verbose, verbose=options.verbose)
    return backend


def run_traces(model: "LoadedModel", kernel: Callable[..., Any], calls: Sequence[tuple], long: bool = False,
               label: str = "remote job") -> list[Any]:
    """`[kernel(*args) for args in calls]`, each kernel opening its own nnsight trace.

    Locally: the plain loop. Remotely (`model.remote`): one request, a session whose body is that loop,
    retried on transient failures; `long` requests poll (`blocking=False`) with `label` and the job's
    status in the active progress display.
    """
    options = model.remote
    if options is None:
        return [kernel(*args) for args in calls]
    blocking = options.blocking if options.blocking is not None else not long
    started = time.monotonic()
    try:
        with network_timeouts(options.timeout_s):
            return retrying(lambda: _session(model, kernel, calls, blocking, label), options)
    finally:
        options.stats.seconds += time.monotonic() - started


def retrying(call: Callable[[], T], options: RemoteOptions) -> T:
    """`call()`, retried with exponential backoff (`backoff_s · 2^i`) on transient remote failures, at most
    `options.retries` times; any other remote failure at once. Both become one-line `RemoteFailure`s."""
    for attempt in range(options.retries + 1):
        try:
            return call()
        except RemoteFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - classified below; anything unknown re-raises as is
            failure = classify(exc, options)
            if failure is None:
                raise
            if not failure.transient or attempt == options.retries:
                if failure.transient:
                    failure.args = (f"{failure} (gave up after {attempt + 1} attempts; finished results are "
                                    f"saved: rerun the same command to resume)",)
                raise failure from None
            options.stats.retries += 1
            time.sleep(options.backoff_s * 2 ** attempt)
    raise AssertionError("unreachable")


def _session(model: "LoadedModel", kernel: Callable[..., Any], calls: Sequence[tuple], blocking: bool,
             label: str) -> list[Any]:
    """One remote request: a session running every call; the saved `results` come back."""
    backend = make_backend(model.lm, model.remote, blocking)
    with model.lm.session(backend=backend):
        results = []
        for args in calls:
            results.append(kernel(*args))
        results.save()
    if blocking:
        return results
    return wait(backend, label, model.remote)["results"]


def wait(backend: Any, label: str, options: RemoteOptions, max_unknown_s: float = 120.0) -> dict[str, Any]:
    """Poll a submitted non-blocking job until it completes; returns its saves (a dict by variable name).

    Shows `label`, the job's status and the time waited in the active progress display. Transient errors
    while polling are retried with backoff (the job keeps running on the server).
    """
    from ..results.progress import waiting

    started = time.monotonic()
    delay = 0.1
    with waiting(label) as update:
        while True:
            result = retrying(backend, options)  # the job keeps running on the server meanwhile
            if result is not None:
                return result
            waited = time.monotonic() - started
            status = backend.status.value if backend.status is not None else "UNKNOWN"
            if backend.status is None and waited > max_unknown_s:
                raise RemoteFailure(f"NDIF at {options.resolved_host} never reported a status for job "
                                    f"{backend.job_id} in {max_unknown_s:.0f} s; is the server healthy?")
            update(f"{label}: {status.lower()} ({waited:.0f} s, job {str(backend.job_id)[:8]})")
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)


