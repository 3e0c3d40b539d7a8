"""Pure result-side functions on hand-made records: paired differences, faithfulness metrics and tables,
dose halves, steering edits, selection overlaps and the partner draw (no model; the scripts that use them are
tested end to end in test_experiments)."""

import pytest
import torch

from gradsae_nn.core.edits import LatentEdit
from gradsae_nn.data.metrics import qa_score
from gradsae_nn.data.squad import QAExample
from gradsae_nn.runs.overlap import overlap
from gradsae_nn.runs.partners import choose_partners
from gradsae_nn.runs.pipeline import Item


def test_paired_setting_rows_are_per_example_differences():
    """GradSAE − other, per K and TopK/BottomK: the mean of the per-example differences (not of the means of
    different example sets), with an interval from resampling examples whole; nothing for two methods only."""
    from gradsae_nn.results.paired import paired_markdown, paired_setting_rows

    def record(i, g, a, e):
        outputs = {"none": {"em": 1.0, "f1": 1.0}}
        for method, f1 in (("gradsae", g), ("attribution", a), ("exact", e)):
            outputs[f"{method}/top/10"] = {"em": float(f1 == 1.0), "f1": f1}
            outputs[f"{method}/bottom/10"] = {"em": 1.0, "f1": 1.0}
        return {"id": str(i), "outputs": outputs}

    # GradSAE's TopK hurts each example 0.2 more than attribution's; exact's 0.1 more than GradSAE's
    records = [record(i, f1 - 0.2, f1, f1 - 0.3) for i, f1 in enumerate((1.0, 0.9, 0.6, 0.8))]
    rows = {row[0]: row[1] for row in paired_setting_rows(records, ["10"])}
    assert rows["GradSAE − Attribution, TopK"] == "-20.00 [-20.0, -20.0]"
    assert rows["GradSAE − Exact ablation, TopK"] == "10.00 [10.0, 10.0]"
    assert rows["GradSAE − Attribution, BottomK"] == "0.00 [0.0, 0.0]"
    two = [{"id": r["id"], "outputs": {k: v for k, v in r["outputs"].items() if not k.startswith("exact")}}
           for r in records]
    assert paired_setting_rows(two, ["10"]) == [] and paired_markdown(two, ["10"]) == []


def test_faithfulness_metrics():
    from gradsae_nn.results.faithfulness import example_metrics

    exact = [5.0, 4.0, 3.0, 2.0, 1.0, 0.5, -1.0]
    metrics = example_metrics({"same": exact, "reversed": exact[::-1]}, exact)
    assert metrics["same"]["spearman"] == pytest.approx(1.0) and metrics["same"]["p@5"] == 1.0
    assert metrics["reversed"]["spearman"] == pytest.approx(-1.0)
    assert metrics["same"]["captured@5"] == metrics["exact"]["captured@5"] == pytest.approx(15 / 15.5)
    assert metrics["reversed"]["captured@5"] == pytest.approx((-1 + 0.5 + 1 + 2 + 3) / 15.5)


def test_faithfulness_by_length_keeps_each_bin_in_its_column():
    """An empty length bin reads "—" under its own header; the other bins' cells do not shift into it."""
    from gradsae_nn.results.faithfulness import by_length_rows, example_metrics

    exact = [3.0, 2.0, 1.0, 0.0]
    metrics = example_metrics({"gradsae": exact, "baseline": exact[::-1]}, exact)
    records = [{"answer_tokens": n, "metrics": metrics} for n in (4, 4, 7, 9)]         # nothing in the first bin
    header, rows = by_length_rows(records)
    assert header[1].endswith("(n = 0)") and header[2].endswith("(n = 2)") and header[3].endswith("(n = 2)")
    by_method = {row[0]: row[1:] for row in rows}
    assert by_method["GradSAE"][0] == "—" and by_method["GradSAE"][1].startswith("1.00")
    assert by_method["Baseline"][2].startswith("-1.00")


def test_faithfulness_paired_differences():
    """GradSAE − another method per example: ranking like exact vs reversed gives Spearman +2 exactly, and the
    same examples enter both sides."""
    from gradsae_nn.results.faithfulness import example_metrics, paired_rows

    exact = [3.0, 2.0, 1.0, 0.0, -1.0, -2.0]
    metrics = example_metrics({"gradsae": exact, "baseline": exact[::-1]}, exact)
    rows = paired_rows([{"metrics": metrics}] * 3)
    assert len(rows) == 1 and rows[0][0] == "GradSAE − Baseline"
    assert rows[0][1] == "2.00 [2.00, 2.00]"                               # Spearman: 1 − (−1)
    assert rows[0][2] == "20.00 [20.0, 20.0]"                              # p@5: 5 of 5 vs 4 of 5
    assert rows[0][5] == "83.33 [83.3, 83.3]"                              # captured@5: 5/6 of the effect vs 0


def test_dose_halves_and_paired_comparison():
    from gradsae_nn.results.dose import half, paired_comparison

    ids = [f"q{i}" for i in range(200)]
    assert 70 < sum(half(i) == "A" for i in ids) < 130 and half("q1") == half("q1")

    def record(i):  # GradSAE steers at ×4 on every pair, the baseline never
        f1 = {("gradsae", 1.0): 0.0, ("gradsae", 4.0): 1.0, ("baseline", 1.0): 0.2, ("baseline", 4.0): 0.0}
        return {"id": i, "outputs": {f"{m}/swap/10/x{s:g}": {"f1": v} for (m, s), v in f1.items()}}

    result = paired_comparison([record(i) for i in ids], ("gradsae", "baseline"), ("10",), (1.0, 4.0))["10"]
    assert result["best_scale"] == {"gradsae": 4.0, "baseline": 1.0}
    diff = result["gradsae_minus_baseline"]
    assert diff.mean == pytest.approx(80.0) and diff.low == pytest.approx(80.0) and diff.n == result["n_B"]


def test_steering_edit_variants_and_scale():
    from gradsae_nn.core.selection import Selection
    from gradsae_nn.runs.steering import steering_edit

    own = Selection("top", 2, 2, (1, 2), (0.5, 0.4))
    partner = Selection("top", 2, 2, (7, 9), (0.9, 0.8))
    values = torch.zeros(16)
    values[7], values[9] = 3.0, 5.0
    assert steering_edit(own, partner, values) == LatentEdit(zero=(1, 2), inject=((7, 3.0), (9, 5.0)))
    assert steering_edit(own, partner, values, scale=4).inject == ((7, 12.0), (9, 20.0))
    assert steering_edit(own, partner, values, "inject-only").zero == ()
    random = steering_edit(own, partner, values, "random", 2, latents=(11, 4))
    assert random == LatentEdit(zero=(1, 2), inject=((11, 6.0), (4, 10.0)))


def test_overlap_definition():
    assert overlap([1, 2, 3, 4], [3, 4]) == 1.0
    assert overlap([1, 2], [3, 4]) == 0.0
    assert overlap([1, 2, 3, 4], [4, 5, 6, 7]) == 0.25


def _item(qid, context, correct=True, answer="a", prediction="a"):
    example = QAExample(qid, "t", context, f"q{qid}", (answer,))
    return Item(example, {"em": 1.0 if correct else 0.0, "f1": 1.0 if correct else 0.0, "prediction": prediction},
                (1, 2), (3,))


def test_partner_choice_is_seeded_and_never_self():
    pool = {it.id: it for it in [_item(f"a{i}", "ctx-a") for i in range(5)] + [_item("b0", "ctx-b"),
                                                                                _item("c0", "ctx-c"),
                                                                                _item("c1", "ctx-c", correct=False)]}
    items = list(pool.values())

    def ids(items, **kw):
        found = choose_partners(items, pool, seed=kw.pop("seed", 42), pool=kw.pop("pool", "correct"))
        return {k: v.id if v else None for k, v in found.partner_of.items()}

    first = ids(items)
    assert first == ids(list(reversed(items)))  # order does not matter
    assert first == ids(items[:2]) | {k: v for k, v in first.items() if k not in ("a0", "a1")}
    assert all(partner != qid for qid, partner in first.items())
    assert first["b0"] is None                      # alone on its context
    assert first["c0"] is None                      # its only neighbour was answered wrongly
    assert ids(items, pool="any")["c0"] == "c1"
    seeds = {tuple(sorted(ids(items, seed=s).items(), key=str)) for s in range(10)}
    assert len(seeds) > 1                           # the seed matters


def test_different_partners_never_share_the_answer():
    """The default pool: every dev question on the context, kept only when neither answer shares a token with
    the other (so "w/o task" is 0); deterministic and independent of which examples the run holds."""
    answers = {"d0": "the red fox", "d1": "red", "d2": "a blue whale", "d3": "green tree", "d4": "Fox"}
    dev = [QAExample(q, "t", "ctx", f"q{q}", (a,)) for q, a in answers.items()]
    dev.append(QAExample("e0", "t", "ctx-e", "qe0", ("alone",)))
    by_context = {}
    for ex in dev:
        by_context.setdefault(ex.context, []).append(ex)
    items = [_item(ex.id, ex.context, answer=ex.answers[0], prediction=ex.answers[0]) for ex in dev]

    def gold(ex):
        return _item(ex.id, ex.context, answer=ex.answers[0], prediction=ex.answers[0])

    def partners(items, seed=42):
        found = choose_partners(items, {}, seed, "different", by_context=by_context, make_gold=gold)
        return found, {k: v.id if v else None for k, v in found.partner_of.items()}

    found, first = partners(items)
    for qid, partner in first.items():
        if partner is not None:
            own, other = answers[qid], answers[partner]
            assert qa_score(own, [other]).f1 == 0 and qa_score(other, [own]).f1 == 0, (qid, partner)
    assert first["d0"] in ("d2", "d3")             # not d1 ("red") nor d4 ("Fox"): they share a token
    assert first["e0"] is None and found.no_other == 1
    assert partners(list(reversed(items)))[1] == first
    assert partners(items[:2])[1] == {k: first[k] for k in ("d0", "d1")}   # independent of run size
    assert len({tuple(sorted(partners(items, s)[1].items(), key=str)) for s in range(10)}) > 1
    # an example whose every neighbour overlaps its answer loses its partner to the filter, and is counted
    overlapping = [_item("x0", "ctx", answer="red fox", prediction="red fox")]
    lost = choose_partners(overlapping, {}, 42, "different", by_context={"ctx": [*dev[:2], dev[4]]}, make_gold=gold)
    assert lost.partner_of["x0"] is None and lost.filtered == 1
