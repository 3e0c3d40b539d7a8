"""Fault injection, remote: a silent and a garbage server on 127.0.0.1 (`fake_servers.py`, stopped by PID);
bounded waits, one-line errors, exit 3, and the API key nowhere (see `faults.py`)."""

import subprocess
import sys

import pytest

from faults import ROOT, assert_no_secret, one_line_error, script, small


@pytest.fixture
def fake_server(request):
    """A misbehaving server on 127.0.0.1 (`tests/fake_servers.py`), stopped by its PID after the test."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_servers.py"), *request.param],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


REMOTE_FAST = ["--remote", "--ndif-timeout", "1", "--ndif-retries", "1"]


@pytest.mark.parametrize("fake_server, verbose, needles", [
    (["silent"], False, ["did not answer within 1 s", "--ndif-timeout", "gave up after 2 attempts"]),  # was a hang
    (["garbage", "502"], False, ["answered HTTP 502", "502 Error", "rerun with -v", "gave up after 2 attempts"]),
    (["garbage", "404"], False, ["answered HTTP 404", "404 Error", "rerun with -v"]),                # not retried
    (["garbage", "404"], True, ["answered HTTP 404", "404 Error"]),
], indirect=["fake_server"])
def test_misbehaving_servers_end_in_one_line_and_exit_3(tiny_dirs, tmp_path, fake_server, verbose, needles):
    """Issue 19.2 and 19.5: a host that accepts and never answers, or answers with an HTML error page, ends
    within the timeouts and retries in one line (the page only with -v), exit 3, no results written."""
    out = tmp_path / "o"
    extra = ["-v"] if verbose else []
    proc = script("perturb", *small(tiny_dirs, *REMOTE_FAST, "--ndif-host", fake_server, "--out", out, *extra),
                  cwd=tmp_path, timeout=120)
    if verbose:                 # the reply follows the one line, tags and all
        assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        first = proc.stderr.strip().splitlines()[0]
        assert all(n in first for n in needles) and "<title>404 Error</title>" in proc.stderr, proc.stderr[-2000:]
    else:
        one_line_error(proc, 3, *needles)
    assert not (out / "examples.jsonl").exists()
    assert_no_secret(proc, tmp_path)


@pytest.mark.parametrize("args, needles", [
    (["--remote", "--ndif-timeout", "0"], ["--ndif-timeout must be a positive"]),
    (["--remote", "--ndif-retries", "-1"], ["--ndif-retries must be 0 or more"]),
])
def test_bad_remote_options(tmp_path, args, needles):
    proc = script("perturb", *args, "--out", tmp_path / "o", cwd=tmp_path, timeout=120)
    one_line_error(proc, 2, *needles)


@pytest.mark.parametrize("fake_server", [["silent"]], indirect=True)
def test_a_silent_server_bounds_the_websocket_wait_too(tiny_dirs, tmp_path, fake_server):
    """Scoring waits on nnsight's websocket (no timeout of its own); with the answers cached locally, the
    first remote request is scoring, and a silent server still ends in one line and exit 3."""
    local = script("perturb", *small(tiny_dirs, "--scoring", "x-grad", "--out", tmp_path / "local"), cwd=tmp_path)
    assert local.returncode == 0, local.stderr[-2000:]
    proc = script("perturb", *small(tiny_dirs, *REMOTE_FAST, "--ndif-host", fake_server, "--out", tmp_path / "o"),
                  cwd=tmp_path, timeout=120)
    one_line_error(proc, 3, "did not answer within 1 s", "WebSocketTimeoutException", "gave up after 2 attempts")
    records = tmp_path / "o" / "examples.jsonl"
    assert not records.exists() or records.read_text() == ""     # no example finished, none half-written
    assert_no_secret(proc, tmp_path)
