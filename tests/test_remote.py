"""Remote execution end to end against a real NDIF on this machine (`gradsae_nn.ndif_local`), `-m remote`.

The server is started once per session (and stopped at the end only if this session started it). If it
cannot start, every test here fails with the reason: remote support is never silently skipped.
Remote results must equal local ones: scores within the rounding tolerance of two evaluations of the model
(tests/tolerance.py; they are bit-identical in practice: the server runs the client's torch version on the
same CPU), token ids, records and tables exactly.
"""

import json
import os
import socket
import sys
import time
from pathlib import Path

import pytest
import torch

from gradsae_nn.cli import run
from gradsae_nn.core.editing import edited_generate
from gradsae_nn.errors import RemoteFailure
from gradsae_nn.core.generation import greedy_generate
from gradsae_nn.remote import RemoteOptions
from gradsae_nn.core.scoring import score_examples
from gradsae_nn.core.selection import select
from gradsae_nn.core.edits import LatentEdit
from gradsae_nn.core.targets import ScoringInput
from tolerance import network_rtol

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import perturb  # noqa: E402
import steer  # noqa: E402

pytestmark = pytest.mark.remote
LAYER = 15
SECRET = "gradsae-test-key-7f3a91c2"  # the local NDIF accepts any key; it must never reach an output file


@pytest.fixture(scope="session")
def ndif_host():
    """The local NDIF's URL: reuses a running stack that serves this GRADSAE_HOME's model, else starts one
    (port GRADSAE_NDIF_PORT, default 8289) and stops it after the session."""
    from gradsae_nn import ndif_local

    before = ndif_local.load_state()
    running = before.stack_id if before and ndif_local.host_url() else None
    try:
        state = ndif_local.start(api_port=int(os.environ.get("GRADSAE_NDIF_PORT", ndif_local.DEFAULT_API_PORT)))
    except Exception as exc:  # noqa: BLE001 - any reason to not have a server is a failure here, never a skip
        pytest.fail(f"the local NDIF could not start, so remote support is untested: {exc}", pytrace=False)
    yield state.host
    if state.stack_id != running:
        ndif_local.stop()


@pytest.fixture(scope="session")
def remote_model(ndif_host):
    from gradsae_nn.models import load_model

    return load_model("smollm2-135m-it", remote=RemoteOptions(host=ndif_host))


@pytest.fixture(scope="session")
def sae(smollm):
    from gradsae_nn.core.sae import load_sae

    return load_sae("smollm2-135m-it/L15", smollm, LAYER)


@pytest.fixture(scope="session")
def inputs(smollm, dev_examples):
    """Three SQuAD dev questions in the default prompt, scored on their first gold answer."""
    from gradsae_nn.data.prompts import get_template, prompt_ids

    template = get_template(None, smollm)
    out = []
    for example in dev_examples[:3]:
        answer = tuple(smollm.tokenizer(" " + example.answers[0], add_special_tokens=False)["input_ids"])
        out.append(ScoringInput(tuple(prompt_ids(smollm, template, example)), answer))
    return out


@pytest.fixture(scope="session")
def local_scores(smollm, sae, inputs):
    return score_examples(smollm, sae, LAYER, inputs, scoring="x-grad")


def test_remote_scores_equal_local(local_scores, remote_model, sae, inputs):
    local = local_scores
    remote = score_examples(remote_model, sae, LAYER, inputs, scoring="x-grad")
    rtol = network_rtol(remote_model.config, passes=2)
    for a, b in zip(local, remote):
        assert (a.gradsae - b.gradsae).abs().max() <= rtol * a.gradsae.abs().max()
        assert (a.activation - b.activation).abs().max() <= rtol * a.activation.abs().max()
        assert (a.n_tokens, a.n_active_last) == (b.n_tokens, b.n_active_last)
        assert abs(a.target - b.target) <= rtol * abs(a.target)
        assert select(a.gradsae, "50%", "top", a.n_active_last) == select(b.gradsae, "50%", "top", b.n_active_last)
    assert remote_model.remote.stats.payload_bytes[-1] < 100_000  # no SAE in the request


def test_every_method_runs_remotely_through_the_same_code(smollm, remote_model, sae, inputs):
    """Integrated gradients (x-grad path traces) and exact ablation (sliced edits, the candidates' rows only) on
    the server equal the same calls run here."""
    kwargs = dict(scoring="x-grad", methods=("integrated-gradients", "exact"), ig_steps=2, exact_candidates=3)
    local = score_examples(smollm, sae, LAYER, inputs[:1], **kwargs)[0]
    remote = score_examples(remote_model, sae, LAYER, inputs[:1], **kwargs)[0]
    rtol = network_rtol(remote_model.config, passes=2)
    for name in ("attribution", "integrated_gradients", "exact"):
        a, b = getattr(local, name), getattr(remote, name)
        assert (a - b).abs().max() <= rtol * a.abs().max(), name
    assert torch.count_nonzero(remote.exact) >= 3                       # the candidates were measured
    sae_bytes = (sae.W_enc.numel() + sae.W_dec.numel()) * sae.W_dec.element_size()
    assert max(remote_model.remote.stats.payload_bytes) < sae_bytes / 2   # residual deltas and slices, no SAE


def test_remote_trace_scoring_is_refused(remote_model, sae, inputs):
    with pytest.raises(Exception, match="x-grad"):
        score_examples(remote_model, sae, LAYER, inputs[:1], scoring="trace")


def test_remote_edited_generation_equals_local(smollm, remote_model, sae, inputs, local_scores):
    """Perturbation (zero TopK) and steering (zero own TopK, inject another question's) edits, in one batch."""
    scores = local_scores[:2]
    tops = [select(s.gradsae, "50%", "top", s.n_active_last) for s in scores]
    prompts = [ex.prompt_ids for ex in inputs[:2]]
    edits = [LatentEdit(zero=tops[0].latents),
             LatentEdit(zero=tops[1].latents, inject=tuple((c, float(scores[0].activation[c])) for c in tops[0].latents))]
    for positions in ("all", "last"):
        local = edited_generate(smollm, sae, LAYER, prompts, edits, 6, positions=positions)
        assert edited_generate(remote_model, sae, LAYER, prompts, edits, 6, positions=positions) == local
    assert greedy_generate(remote_model, prompts, 6) == greedy_generate(smollm, prompts, 6)


def test_non_blocking_job_completes(ndif_host, local_scores, sae, inputs):
    from gradsae_nn.models import load_model

    polled = load_model("smollm2-135m-it", remote=RemoteOptions(host=ndif_host, blocking=False))
    local = local_scores
    remote = score_examples(polled, sae, LAYER, inputs, scoring="x-grad")
    assert all(torch.equal(a.gradsae, b.gradsae) for a, b in zip(local, remote))
    assert polled.remote.stats.requests == 1


def test_server_side_error_is_one_line_with_traceback_in_detail(remote_model):
    with pytest.raises(RemoteFailure) as info:
        greedy_generate(remote_model, [[10 ** 7]], 2)  # token id beyond the vocabulary: fails on the server
    message = str(info.value)
    assert len(message.splitlines()) == 1 and "IndexError" in message and "-v" in message
    assert "Traceback" in info.value.detail and not info.value.transient


def test_wrong_host_fails_fast(ndif_host):
    from gradsae_nn.models import load_model

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = load_model("smollm2-135m-it", remote=RemoteOptions(host=f"http://127.0.0.1:{port}"))
    started = time.monotonic()
    with pytest.raises(RemoteFailure, match="connection refused") as info:
        greedy_generate(model, [[1, 2, 3]], 2)
    assert time.monotonic() - started < 5 and len(str(info.value).splitlines()) == 1


def _cli(main, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(lambda: main(argv))
    return exit_info.value.code, capsys.readouterr()


def test_cli_wrong_host_is_one_line_exit_3(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out = _cli(perturb.main, ["--remote", "--ndif-host", "http://127.0.0.1:9", "--limit", "8",
                                    "--n-correct", "1", "--out", str(tmp_path / "p")], capsys)
    assert code == 3 and len(out.err.strip().splitlines()) == 1 and "connection refused" in out.err


@pytest.fixture(scope="module")
def scripts_dir(tmp_path_factory):
    """One working directory for the script tests, so they share the answer step's cache."""
    return tmp_path_factory.mktemp("scripts")


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_perturb_remote_interrupted_resumed_equals_local(ndif_host, scripts_dir, monkeypatch, capsys):
    """The script end to end: remote (answer step, scoring, edits), interrupted after one example and
    resumed, gives the local run's records and table; the API key appears in no output."""
    import gradsae_nn.runs.perturbation as perturbation

    tmp_path = scripts_dir
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NDIF_API_KEY", SECRET)
    args = ["--limit", "8", "--n-correct", "2", "--k", "1", "--batch-size", "1", "--scoring", "x-grad"]
    remote = ["--remote", "--ndif-host", ndif_host, "--out", str(tmp_path / "remote"), *args]
    real, calls = perturbation.run_job_groups, []

    def interrupted(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second example's generations run remotely
        return real(*a, **kw)

    monkeypatch.setattr(perturbation, "run_job_groups", interrupted)
    with pytest.raises(KeyboardInterrupt):
        perturb.main(remote)
    assert len((tmp_path / "remote" / "examples.jsonl").read_text().splitlines()) == 1
    monkeypatch.setattr(perturbation, "run_job_groups", real)
    assert perturb.main(remote) == 0
    assert perturb.main(["--out", str(tmp_path / "local"), *args]) == 0

    remote_records, local_records = _records(tmp_path / "remote" / "examples.jsonl"), \
        _records(tmp_path / "local" / "examples.jsonl")
    assert len(remote_records) == 2 and remote_records == local_records
    for name in ("table.md", "table.csv"):
        assert (tmp_path / "remote" / name).read_text() == (tmp_path / "local" / name).read_text()
    summary = json.loads((tmp_path / "remote" / "summary.json").read_text())
    assert summary["remote"]["host"] == ndif_host and summary["remote"]["requests"] > 0
    printed = capsys.readouterr()
    for path in tmp_path.rglob("*"):  # results, manifests, answer cache
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in printed.out + printed.err


def test_steer_remote_equals_local(ndif_host, scripts_dir, monkeypatch):
    """Steering end to end; batch size 2 puts several scoring traces in one session request."""
    tmp_path = scripts_dir
    monkeypatch.chdir(tmp_path)
    args = ["--limit", "8", "--n-correct", "2", "--k", "1", "--partners", "any", "--batch-size", "2",
            "--scoring", "x-grad"]
    assert steer.main(["--remote", "--ndif-host", ndif_host, "--out", str(tmp_path / "steer-remote"), *args]) == 0
    assert steer.main(["--out", str(tmp_path / "steer-local"), *args]) == 0
    assert _records(tmp_path / "steer-remote" / "examples.jsonl") == _records(tmp_path / "steer-local" / "examples.jsonl")
    assert (tmp_path / "steer-remote" / "table.md").read_text() == (tmp_path / "steer-local" / "table.md").read_text()


def test_notebook_lines_run_remotely(ndif_host, smollm):
    """The quickstart's lines with `remote=`: the same answer, scores within rounding, the same edited answer."""
    import gradsae_nn as gs

    context = ("The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named "
               "after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889.")
    local = gs.load("smollm2-135m-it")
    remote = gs.load("smollm2-135m-it", remote=ndif_host)
    prompt = remote.qa(context, "In which city is the Eiffel Tower?")
    here, there = local.score(prompt), remote.score(prompt)     # trace here, x-grad there: chosen automatically
    assert there.answer_ids == here.answer_ids
    rtol = network_rtol(remote.model.config, passes=2)
    assert (there.scores.gradsae - here.scores.gradsae).abs().max() <= rtol * here.scores.gradsae.abs().max()
    zero = here.top_latents(50)
    assert remote.generate(prompt, zero=zero) == local.generate(prompt, zero=zero)
