"""Append-only JSONL survives torn writes; run folders refuse mixed configurations."""

import json

import pytest

from gradsae_nn.errors import UsageError
from gradsae_nn.errors import OptionError
from gradsae_nn.results.records import JsonlAppender, atomic_write_json, check_run_config, read_jsonl


def test_jsonl_roundtrip_and_torn_tail(tmp_path):
    path = tmp_path / "r.jsonl"
    with JsonlAppender(path) as sink:
        sink.write([{"id": "a"}, {"id": "b"}])
    with open(path, "a") as fh:          # a crash in the middle of writing a line
        fh.write('{"id": "c", "val')
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b"]
    with JsonlAppender(path) as sink:    # reopening cuts the torn line before appending
        sink.write([{"id": "c"}])
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b", "c"]
    assert path.read_text().count("\n") == 3


def test_read_jsonl_missing_file(tmp_path):
    assert read_jsonl(tmp_path / "none.jsonl") == []


def test_atomic_write_json_replaces_whole_file(tmp_path):
    path = tmp_path / "s.json"
    atomic_write_json(path, {"x": 1})
    atomic_write_json(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temp files left behind


def test_run_config_guard(tmp_path):
    check_run_config(tmp_path, {"model": "m", "prompt": "p"})
    check_run_config(tmp_path, {"model": "m", "prompt": "p"})   # a resume: same config is fine
    with pytest.raises(UsageError, match="differs in: prompt"):
        check_run_config(tmp_path, {"model": "m", "prompt": "q"})


def test_run_config_counts_later_options_at_their_earlier_value(tmp_path):
    """A folder written before an option existed (or one that recorded it at that value) still resumes."""
    check_run_config(tmp_path, {"model": "m", "methods": ["gradsae", "baseline"], "value_scale": 1.0})
    check_run_config(tmp_path, {"model": "m"})                                   # omitted: the earlier value
    with pytest.raises(OptionError, match="methods"):
        check_run_config(tmp_path, {"model": "m", "methods": ["gradsae", "exact"]})
