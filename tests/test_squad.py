"""SQuAD loading through datasets: the packaged dev set, bad files, sampling and grouping."""

import json
import zipfile

import pytest

from gradsae_nn.errors import UsageError
from gradsae_nn.data.squad import (DEV_QUESTIONS, group_by_context, load_squad, select_examples,
                              source_fingerprint, to_examples)

DEV_ZIP_SHA256 = "6cf38c56fc7341bab8a5132f205dd7198148a6be9073ccd8ef07d55ca73b09b7"


@pytest.fixture(scope="module")
def dev():
    return load_squad()


def test_packaged_dev_set_is_the_official_one(dev):
    assert len(dev) == DEV_QUESTIONS == 10_570
    assert set(dev.column_names) == {"id", "title", "context", "question", "answers"}
    assert dev[0]["title"] == "Super_Bowl_50"
    assert len(set(dev["title"])) == 48
    assert len(set(dev["context"])) == 2_067
    assert sum(len(a["text"]) for a in dev["answers"]) == 34_726
    assert source_fingerprint("squad-dev") == DEV_ZIP_SHA256


def test_examples_carry_all_gold_answers(dev):
    first = to_examples(dev.select(range(1)))[0]
    assert first.question == "Which NFL team represented the AFC at Super Bowl 50?"
    assert first.answers == ("Denver Broncos", "Denver Broncos", "Denver Broncos")


def test_select_examples_keeps_contexts_together_and_extends(dev):
    examples = to_examples(dev)
    small = select_examples(examples, 50, seed=0)
    large = select_examples(examples, 120, seed=0)
    assert len(small) == 50 and len(large) == 120
    assert [e.id for e in large[:50]] == [e.id for e in small]          # larger limit extends
    assert select_examples(examples, 50, seed=1)[0].id != small[0].id   # seed matters
    groups = group_by_context(large)
    # every context but possibly the last cut one contributes all its questions
    full = group_by_context(examples)
    complete = [c for c in groups if len(groups[c]) == len(full[c])]
    assert len(complete) >= len(groups) - 1
    assert len({e.id for e in large}) == 120


def test_group_by_context_preserves_order(dev):
    examples = to_examples(dev.select(range(30)))
    groups = group_by_context(examples)
    assert [e.id for g in groups.values() for e in g] == [e.id for e in examples]
    assert all(len({e.context for e in g}) == 1 for g in groups.values())


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_custom_squad_file_and_zip(tmp_path):
    doc = {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "Paris is in France.", "qas": [
        {"id": "q1", "question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}]}]}]}]}
    path = _write(tmp_path, "mini.json", json.dumps(doc))
    ds = load_squad(path)
    assert len(ds) == 1 and ds[0]["answers"]["text"] == ["France"]
    zpath = tmp_path / "mini.json.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("mini.json", json.dumps(doc))
    assert load_squad(str(zpath))[0]["id"] == "q1"


@pytest.mark.parametrize("content, needle", [
    ("this is not json", "not valid JSON"),
    ('{"version": "1.1"}', "'data' list"),
    ('[1, 2, 3]', "'data' list"),
    ('{"data": [{"title": "T", "paragraphs": [{"context": "c"}]}]}', "lacks the field 'qas'"),
    ('{"data": []}', "holds no questions"),
])
def test_bad_data_files_name_file_and_problem(tmp_path, content, needle):
    path = _write(tmp_path, "bad.json", content)
    with pytest.raises(UsageError) as err:
        load_squad(path)
    message = str(err.value)
    assert path in message and needle in message and "\n" not in message


def test_missing_data_file(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_squad(str(tmp_path / "nope.json"))
