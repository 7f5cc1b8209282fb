"""handlers/triage_learn.py: corrections -> overlay, before/after, and the guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import handlers.triage_learn as triage_learn
from config.keywords import load_keywords
from handlers.triage import Classifier, build_classifier
from handlers.triage_learn import (
    Correction,
    Overlay,
    OverlayError,
    check_overlay,
    evaluate,
    learn,
    learn_overlay,
    load_cases,
    split_corrections,
)

EVAL = Path(__file__).parent / "data" / "triage_eval.jsonl"

# Telecom cables (光缆) are not in the tables; the office keeps moving these
# reports to 工信 (通信 is an 工业和信息化 duty).
CABLE_REPORTS = [
    "光缆迁改运营商一直不配合",
    "施工范围内有通信光缆要迁改",
    "联通光缆迁改费用谈不拢",
    "移动公司的光缆改线方案没出",
    "电信光缆迁移工期太长",
    "红线内有光缆和通信杆要挪",
    "光缆迁改的事没人牵头",
    "通信光缆改迁需要工信协调运营商",
    "铁塔公司的基站和光缆要迁",
    "光缆迁改拖了两个月",
    "三家运营商光缆迁改协调难",
    "通信管线光缆迁改方案没定",
    "光缆要挪，运营商说排不上",
    "厂区里的光缆改线没人管",
    "光缆迁移费用太高",
    "地下光缆挡着基础施工，要迁走",
]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Classifier:
    return build_classifier(load_keywords(), tmp_path_factory.mktemp("jieba-cache"))


@pytest.fixture(scope="module")
def cases() -> list[tuple[str, str | None]]:
    return load_cases(EVAL)


def _corrections(classifier: Classifier, texts, correct: str) -> list[Correction]:
    return [Correction(t, classifier.classify(t).unit_type, correct) for t in texts]


# -- overlay serialisation ---------------------------------------------------------


def test_overlay_json_round_trip():
    overlay = Overlay({"光缆": {"industry": 2.0, "power": -1.0}, "运营商": {"industry": 1.0}})
    text = overlay.to_json()
    assert json.loads(text)["version"] == 1
    again = Overlay.from_json(text)
    assert {t: dict(d) for t, d in again.weights.items()} == {
        "光缆": {"industry": 2.0, "power": -1.0},
        "运营商": {"industry": 1.0},
    }
    assert again.to_json() == text
    assert len(again) == 2


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"version": 2, "weights": {}}',
        '{"version": 1, "weights": []}',
        '{"version": 1, "weights": {"光缆": {"telecom": 1}}}',
        '{"version": 1, "weights": {"光缆": {"industry": "1"}}}',
        '{"version": 1, "weights": {"光缆": {"industry": true}}}',
        '{"version": 1, "weights": {"光缆": 1}}',
        '{"version": 1, "weights": {" ": {"industry": 1}}}',
    ],
)
def test_overlay_from_bad_json(text):
    with pytest.raises(OverlayError):
        Overlay.from_json(text)


def test_overlay_changes_scores_without_touching_tables(classifier):
    overlay = Overlay({"光缆": {"industry": 3.0}})
    before = classifier.classify("光缆迁移费用太高")
    after = classifier.with_overlay(overlay).classify("光缆迁移费用太高")
    assert before.unit_type != "industry"
    assert after.unit_type == "industry" and "光缆" in after.matched["industry"]
    assert classifier.overlay is None and classifier.classify("光缆迁移费用太高") == before
    assert classifier.with_overlay(overlay).tables is classifier.tables


# -- split ---------------------------------------------------------------------


def test_split_is_deterministic_and_order_free():
    corrections = [Correction(f"第{i}条：用地指标不够", None, "natural_resources") for i in range(200)]
    train, held = split_corrections(corrections, 0.25)
    assert len(train) + len(held) == 200 and not set(train) & set(held)
    assert 30 <= len(held) <= 70
    train2, held2 = split_corrections(list(reversed(corrections)), 0.25)
    assert set(held2) == set(held) and set(train2) == set(train)
    assert split_corrections(corrections[:50], 0.25)[1] == [c for c in held if c in corrections[:50]]
    assert split_corrections(corrections, 0.0) == (corrections, [])
    with pytest.raises(ValueError):
        split_corrections(corrections, 1.0)


# -- learning -------------------------------------------------------------------


def test_learning_improves_held_out_and_keeps_table_cases(classifier, cases):
    corrections = _corrections(classifier, CABLE_REPORTS, "industry")
    assert sum(c.proposed_type != "industry" for c in corrections) >= 8  # the tables do get these wrong
    report = learn(classifier, corrections, cases)
    assert report.held_out_size >= 2 and report.train_size >= 8
    assert report.after.accuracy > report.before.accuracy
    assert report.after.accuracy == 1.0
    assert report.accepted and report.guard.ok and report.overlay is report.candidate
    assert report.guard.checked == len(cases) + len(classifier.tables.examples())
    # never worse on the tables' own cases, checked independently
    base = evaluate(classifier, cases)
    layered = evaluate(classifier.with_overlay(report.overlay), cases)
    assert layered.correct >= base.correct
    assert check_overlay(classifier, report.overlay, cases).ok
    # the overlay survives a JSON round trip with the same effect
    again = Overlay.from_json(report.overlay.to_json())
    for text in CABLE_REPORTS:
        assert classifier.with_overlay(again).classify(text).unit_type == "industry"
    assert "学习前" in report.summary() and "已采用" in report.summary()


def test_learning_is_deterministic(classifier, cases):
    corrections = _corrections(classifier, CABLE_REPORTS, "industry")
    a = learn(classifier, corrections, cases)
    b = learn(classifier, list(reversed(corrections)), cases)
    assert len(a.candidate) > 0
    assert a.candidate.to_json() == b.candidate.to_json()
    assert (a.before, a.after) == (b.before, b.after)


def test_guard_rejects_an_overlay_that_breaks_a_table_case(classifier, cases):
    harmful = Overlay({"施工许可证": {"approval": -10.0, "housing": 10.0}})
    result = check_overlay(classifier, harmful, cases)
    assert not result.ok
    texts = [w[0] for w in result.worse]
    assert any("施工许可证" in t for t in texts)
    for text, expected, before, after in result.worse:
        assert before == expected and after != expected


def test_learn_rejects_when_training_would_break_table_cases(classifier, cases, monkeypatch):
    # Train WITHOUT the protective anchors: the contradictory corrections then
    # produce an overlay that breaks the tables' own cases, and learn() refuses it.
    original = triage_learn.learn_overlay

    def without_anchors(clf, corrections, anchors=(), **options):
        return original(clf, corrections, (), **options)

    monkeypatch.setattr(triage_learn, "learn_overlay", without_anchors)
    texts = [f"施工许可证第{i}次被退回，说材料不全" for i in range(12)]
    corrections = _corrections(classifier, texts, "housing")
    report = learn(classifier, corrections, cases)
    assert not report.accepted and report.overlay is None
    assert report.guard.worse
    assert len(report.candidate) > 0
    assert "已拒绝" in report.summary()


def test_anchors_keep_contradictory_corrections_from_breaking_cases(classifier, cases):
    # The same corrections as above, trained WITH the anchors: the table cases win
    # and the overlay is accepted because it breaks none of them.
    texts = [f"施工许可证第{i}次被退回，说材料不全" for i in range(12)]
    corrections = _corrections(classifier, texts, "housing")
    own = list(classifier.tables.examples()) + cases
    overlay = learn_overlay(classifier, corrections, own)
    assert check_overlay(classifier, overlay, own).ok
    report = learn(classifier, corrections, cases)
    assert report.accepted and check_overlay(classifier, report.overlay, cases).ok


def test_cases_the_tables_get_wrong_are_not_learned_from(classifier, cases):
    # Only corrections teach: with none, the evaluation set's misses stay missed.
    wrong = [(t, u) for t, u in cases if classifier.classify(t).unit_type != u]
    assert wrong  # the eval set has a few
    assert len(learn_overlay(classifier, [], cases)) == 0


def test_obstruction_corrections_are_unlearnable(classifier, cases):
    texts = ["村民堵门讨要工资", "工人堵住大门要工资", "讨薪工人把路堵了"]
    corrections = _corrections(classifier, texts, "human_resources")
    assert all(c.proposed_type == "public_security" for c in corrections)
    report = learn(classifier, corrections, cases)
    assert report.unlearnable == 3
    assert "阻工类纠正" in report.summary()


def test_plain_tuples_are_accepted(classifier, cases):
    tuples = [(t, classifier.classify(t).unit_type, "industry") for t in CABLE_REPORTS]
    objects = _corrections(classifier, CABLE_REPORTS, "industry")
    assert learn(classifier, tuples, cases).candidate.to_json() == learn(classifier, objects, cases).candidate.to_json()
    with pytest.raises(ValueError):
        learn(classifier, [("光缆迁移", None, "telecom")], cases)


def test_no_corrections(classifier, cases):
    report = learn(classifier, [], cases)
    assert report.accepted and len(report.candidate) == 0
    assert report.before.total == 0 and report.after.accuracy == 1.0
