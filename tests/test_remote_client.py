"""The remote client's logic without a server: failure classification, retries, refusals, options."""

import socket
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import websocket
from nnsight.intervention.backends.remote import RemoteError

from conftest import make_sae
from gradsae_nn.remote import client as remote
from gradsae_nn.errors import RemoteFailure, UsageError
from gradsae_nn.remote import RemoteOptions, classify, run_traces
from gradsae_nn.core.edits import resolve_edit_impl


HOST = "http://127.0.0.1:8289"


def _http_error(code: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", f"{HOST}/request")
    return httpx.HTTPStatusError("boom", request=request, response=httpx.Response(code, request=request, text="busy"))


def _wrapped(cause: BaseException) -> RemoteError:
    """What nnsight raises when POSTing the request fails: a RemoteError caused by the httpx error."""
    try:
        raise RemoteError(f"Failed to send request: {cause}") from cause
    except RemoteError as exc:
        return exc


@pytest.mark.parametrize("exc, transient, needle", [
    (ConnectionRefusedError(111, "Connection refused"), False, "connection refused"),
    (_wrapped(httpx.ConnectError("[Errno 111] Connection refused")), False, "connection refused"),
    (socket.gaierror(-2, "Name or service not known"), False, "unknown host"),
    (ConnectionResetError(104, "Connection reset by peer"), True, "lost the connection"),
    (websocket.WebSocketConnectionClosedException("closed"), True, "lost the connection"),
    (_wrapped(_http_error(503)), True, "HTTP 503"),
    (_http_error(502), True, "HTTP 502"),
    (_wrapped(_http_error(401)), False, "NDIF_API_KEY"),
    (_wrapped(_http_error(404)), False, "HTTP 404"),
    (websocket.WebSocketBadStatusException("Handshake status %d %s", 404, "Not Found"), False, "NDIF server"),
])
def test_failures_are_classified(exc, transient, needle):
    failure = classify(exc, RemoteOptions(host=HOST))
    assert failure is not None and failure.transient == transient and needle in str(failure)
    assert len(str(failure).splitlines()) == 1


def test_server_traceback_is_one_line_plus_detail():
    tb = "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nIndexError: index out of range in self\n"
    failure = classify(RemoteError(tb), RemoteOptions(host=HOST))
    assert str(failure).startswith(f"the NDIF server at {HOST} failed the request: IndexError: index out of range")
    assert "-v" in str(failure) and failure.detail == tb.strip() and not failure.show_detail
    verbose = classify(RemoteError(tb), RemoteOptions(host=HOST, verbose=True))
    assert verbose.show_detail and "-v" not in str(verbose)


def test_a_bug_is_not_a_remote_failure():
    assert classify(ValueError("a bug"), RemoteOptions(host=HOST)) is None


def _fake_model(options):
    return SimpleNamespace(remote=options, lm=None)


def test_transient_failures_are_retried(monkeypatch):
    failures = [ConnectionResetError(104, "reset"), _wrapped(_http_error(503))]

    def session(*args):
        if failures:
            raise failures.pop(0)
        return ["ok"]

    monkeypatch.setattr(remote, "_session", session)
    options = RemoteOptions(host=HOST, backoff_s=0)
    assert run_traces(_fake_model(options), None, [()]) == ["ok"]
    assert options.stats.retries == 2


def test_refused_is_not_retried_and_transient_gives_up(monkeypatch):
    calls = []

    def refused(*args):
        calls.append(1)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(remote, "_session", refused)
    with pytest.raises(RemoteFailure, match="connection refused"):
        run_traces(_fake_model(RemoteOptions(host=HOST, backoff_s=0)), None, [()])
    assert len(calls) == 1

    monkeypatch.setattr(remote, "_session", lambda *a: (_ for _ in ()).throw(ConnectionResetError(104, "reset")))
    with pytest.raises(RemoteFailure, match="gave up after 3 attempts.*rerun the same command to resume"):
        run_traces(_fake_model(RemoteOptions(host=HOST, backoff_s=0, retries=2)), None, [()])


def test_local_run_is_the_plain_loop():
    assert run_traces(SimpleNamespace(remote=None), lambda a, b: a + b, [(1, 2), (3, 4)]) == [3, 7]


def test_topk_sae_cannot_be_edited_remotely():
    topk = make_sae("topk", d_in=32, d_sae=64)
    assert resolve_edit_impl(topk, "auto", "lossless") == "full"  # fine locally
    with pytest.raises(UsageError, match="cannot be sliced.*run this edit locally"):
        resolve_edit_impl(topk, "auto", "lossless", remote=True)
    relu = make_sae("standard", d_in=32, d_sae=64)
    assert resolve_edit_impl(relu, "auto", "lossless", remote=True) == "sliced"
    for impl, splice in (("full", "lossless"), ("auto", "reconstruct")):
        with pytest.raises(UsageError, match="remote edits send only"):
            resolve_edit_impl(relu, impl, splice, remote=True)


def test_api_key_is_not_an_option_and_host_needs_remote(capsys):
    from gradsae_nn.cli import parse, parser_for
    from gradsae_nn.config import PerturbConfig
    from gradsae_nn.errors import OptionError
    from gradsae_nn.runs.answers import remote_options

    parser = parser_for(PerturbConfig, "perturb")
    for flag in ("--api-key", "--ndif-api-key", "--key"):
        with pytest.raises(SystemExit):
            parser.parse_args([flag, "secret"])
    config = parse(PerturbConfig, ["--remote", "--ndif-host", HOST], "perturb")
    assert remote_options(config).resolved_host == HOST and config.method.scoring == "x-grad"
    assert parse(PerturbConfig, [], "perturb").method.scoring == "trace"
    with pytest.raises(OptionError) as info:
        parse(PerturbConfig, ["--ndif-host", HOST], "perturb")
    assert info.value.for_cli() == "--ndif-host needs --remote (or drop it to run locally)"
    assert str(info.value) == "ndif_host needs remote (or drop it to run locally)"  # the library's words


def test_default_host_is_nnsights(monkeypatch):
    from nnsight import CONFIG

    monkeypatch.setattr(CONFIG.API, "HOST", "https://ndif.example/")
    assert RemoteOptions().resolved_host == "https://ndif.example"


@pytest.mark.parametrize("verbose", [False, True])
def test_cli_prints_one_line_and_the_traceback_only_with_v(capsys, verbose):
    from gradsae_nn.cli import run

    failure = classify(RemoteError("Traceback (most recent call last):\n  boom\nValueError: bad"),
                       RemoteOptions(host=HOST, verbose=verbose))

    def main():
        raise failure

    with pytest.raises(SystemExit) as exit_info:
        run(main)
    err = capsys.readouterr().err
    assert exit_info.value.code == 3 and err.splitlines()[0].endswith("ValueError: bad" + ("" if verbose else
                                                                      " (rerun with -v for the server's traceback)"))
    assert ("Traceback" in err) == verbose


def test_server_runs_the_clients_torch():
    """The local NDIF's environment pins the torch of pyproject.toml: one machine, one set of kernels."""
    import re

    from gradsae_nn.ndif_local.env import SERVER_REQUIREMENTS

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    client = re.search(r'"(torch==[^"]+)"', pyproject).group(1)
    assert client in SERVER_REQUIREMENTS
