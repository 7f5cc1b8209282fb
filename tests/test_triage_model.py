"""handlers/triage_model.py and rule 7 of handlers/triage.py: the model learned
from config/triage_corpus, layered on the keyword tables.

The triage_unseen*.jsonl sets were written by separate sessions after the model
and its place beside the tables (keywords.toml [model]) were settled, from the duty
annex of seeds/002 and DOMAIN.md only, and were scored once as first seen; they are
in neither the corpus nor the tables' tuning. First seen, top-1 of all rows and
obstruction recall (tables alone -> tables + model):

    set  what                                           top-1           obstruction
    22   an exam, a Shanxi/Hebei city                   96.3 -> 98.6%   40/40 -> 40/40
    23   an exam, a hilly inland prefecture             92.7 -> 96.8%   38/40 -> 39/40
    24   80 obstruction, 50 decoys, 30 ordinary         82.9 -> 91.8%   69/80 -> 79/80
    25   an exam, a coastal north-eastern city          81.3 -> 89.2%   31/40 -> 39/40
    26   70 obstruction, 50 decoys, 30 unroutable       93.3 -> 95.9%   65/70 -> 69/70

Set 25 was scored after everything else was final (tables and model untouched
since). Then one change: a tie between two types (the tables' "ambiguous") needs
the model as sure as a report without any word (no_match_probability), so the
office still decides what is too close to call: one row less on sets 24 and 25
(91.1%, 88.8%).

Five more sets were written the same way later (30 obstruction of which 6-8 ask
another unit to act, 15 decoys, 10 unroutable, the rest over every department),
each in its own setting, and scored first seen with the model as it was:

    27   a coastal port city                            94.0 -> 97.3%   30/30 -> 28/30
    28   a south-western mountain county, dialect       92.7 -> 98.7%   30/30 -> 29/30
    29   a large city's metro and urban renewal         94.7 -> 98.0%   28/30 -> 28/30
    30   a northern plains county in winter             94.0 -> 100%    28/30 -> 28/30
    31   public works, casual and formal reports        96.0 -> 96.0%   30/30 -> 29/30

The model undid the tables' obstruction on workers blocking a gate over unpaid
wages while asking 人社局 to act (five times across the sets): no report in the
corpus had shown that. Sets 27-29 went into the corpus; with them, set 30 is at
99.3% and 29/30, set 31 at 97.3% and 29/30; sets 22-26 together went from 915 to
916 of 967 routable reports right (set 23 one less, 24 and 25 one more) and from
266 to 267 of 270 obstructions, with 3 more other reports called obstruction (37 of 760).
Sets 22-26, 30 and 31 stay out of the corpus. The floors below are the figures,
rounded down.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.corpus import LabelledReport, load_corpus
from config.keywords import load_keywords, normalize, parse_keywords
from config.settings import ConfigError, read_toml
from handlers.triage_model import CorpusModel, gram_key, gram_keys, ngrams, train
from handlers.triage_setup import MODEL_CACHE_FILE, build_triage, load_model
from tests.triage_support import DATA
from tests.triage_support import measure as _measure
from tests.triage_support import rows as _rows


UNSEEN_FLOORS = {  # (top-1 of all rows, obstruction recall, routable sent to the office at most)
    "triage_unseen22.jsonl": (0.98, 1.0, 0.0),
    "triage_unseen23.jsonl": (0.96, 0.975, 0.01),
    "triage_unseen24.jsonl": (0.91, 0.98, 0.02),
    "triage_unseen25.jsonl": (0.885, 0.975, 0.04),
    "triage_unseen26.jsonl": (0.95, 0.98, 0.02),
    "triage_unseen30.jsonl": (0.99, 0.96, 0.0),
    "triage_unseen31.jsonl": (0.97, 0.96, 0.01),
}
# The tables alone on the same sets (the model must add, not only match them).
UNSEEN_TABLES = {
    "triage_unseen22.jsonl": 0.9635, "triage_unseen23.jsonl": 0.9269,
    "triage_unseen24.jsonl": 0.8291, "triage_unseen25.jsonl": 0.8125, "triage_unseen26.jsonl": 0.933,
    "triage_unseen30.jsonl": 0.94, "triage_unseen31.jsonl": 0.96,
}


@pytest.fixture(scope="module")
def layered(tmp_path_factory):
    return build_triage(load_keywords(), tmp_path_factory.mktemp("triage-cache"))


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


# -- what the model learns from ------------------------------------------------------


def test_corpus_is_labelled_and_apart_from_the_test_sets(corpus):
    assert len(corpus.reports) >= 4000
    assert sum(r.obstruction for r in corpus.reports) >= 500
    assert sum(r.unit_type is None for r in corpus.reports) >= 50
    held_out = {r["text"] for path in DATA.glob("*.jsonl") for r in _rows(path.name)}
    assert not held_out & {r.text for r in corpus.reports}


@pytest.mark.parametrize(
    "line, key, problem",
    [
        ("not json", "line 2", "not JSON"),
        ('{"text": "", "unit_type": null, "tier": "general"}', "line 2.text", "non-empty"),
        ('{"text": "x", "unit_type": "police", "tier": "general"}', "line 2.unit_type", "unknown unit type"),
        ('{"text": "x", "unit_type": null, "tier": "urgent"}', "line 2.tier", "unknown tier"),
        ("[1, 2]", "line 2", "JSON object"),
    ],
)
def test_a_bad_corpus_line_is_refused_with_file_and_line(tmp_path, line, key, problem):
    good = '{"text": "临时用电没接", "unit_type": "power", "tier": "general", "why": "供电"}'
    (tmp_path / "a.jsonl").write_text(good + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_corpus(tmp_path)
    assert "a.jsonl" in str(info.value) and key in str(info.value) and problem in str(info.value)


def test_model_parameters_are_validated():
    data = read_toml(Path(load_keywords().source))
    data["model"] = {"temperature": 0}
    with pytest.raises(ConfigError, match="model.temperature"):
        parse_keywords(data)
    data["model"] = {"tables_margin": 2.5, "unknown": 1}
    with pytest.raises(ConfigError, match="model.unknown"):
        parse_keywords(data)
    data["model"] = {"add_obstruction_probability": 0.95}
    assert parse_keywords(data).model.add_obstruction_probability == 0.95


# -- the model itself -----------------------------------------------------------------


def test_numpy_keys_are_the_ngrams(corpus):
    for report in corpus.reports[::7]:
        text = normalize(report.text)
        assert gram_keys(text).tolist() == sorted(map(gram_key, ngrams(text))), text
    # Digits collapse to one "0" (stake numbers and dates do not count); punctuation breaks runs.
    assert ngrams("k12+300处2段") == {"k", "0", "k0", "处", "段", "0处", "处0", "0段", "0处0", "处0段"}
    assert ngrams("ab，村民") == {"a", "b", "ab", "村", "民", "村民"}


def test_model_learns_what_it_is_shown():
    reports = [
        LabelledReport("临时用电变压器还没装", "power", False),
        LabelledReport("变压器容量不够，用电报装卡住", "power", False),
        LabelledReport("施工许可证没批下来", "approval", False),
        LabelledReport("许可证审批材料被退回", "approval", False),
        LabelledReport("村民把挖掘机围住不让干活", "public_security", True),
        LabelledReport("有人躺在挖掘机前面不让动", "public_security", True),
        LabelledReport("你好在吗", None, False),
    ]
    model = train(reports, alpha=0.1)
    assert model.read(normalize("变压器还没有装好")).unit().unit_type == "power"
    assert model.read(normalize("许可证还在审批")).unit().unit_type == "approval"
    reading = model.read(normalize("几个人围住挖掘机不让动"))
    assert reading.unit().unit_type == "public_security" and reading.obstruction() > 0.9
    assert model.read(normalize("变压器容量不够")).obstruction() < 0.1
    # A higher temperature is less sure, never differently sure.
    hot, cold = reading.unit(8.0), reading.unit(1.0)
    assert hot.unit_type == cold.unit_type and hot.probability < cold.probability
    assert "挖掘机" in "".join(reading.evidence("public_security", None))
    with pytest.raises(ValueError):
        train(reports[:2], alpha=0.1)  # one unit type, no obstruction: nothing to tell apart


def test_model_survives_its_bytes(corpus):
    model = train(corpus.reports[:800], alpha=0.1, fingerprint="f")
    again = CorpusModel.from_bytes(model.to_bytes())
    assert again.fingerprint == "f" and len(again) == len(model) and again.classes == model.classes
    for report in corpus.reports[800:900]:
        a, b = model.read(normalize(report.text)), again.read(normalize(report.text))
        assert a.unit(4.0) == b.unit(4.0) and a.obstruction(4.0) == b.obstruction(4.0)
    for bad in (b"", b"junk", model.to_bytes()[:-40]):
        with pytest.raises(ValueError):
            CorpusModel.from_bytes(bad)


def test_model_is_cached_for_its_corpus_and_parameters(tmp_path):
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    lines = [json.dumps({"text": r.text, "unit_type": r.unit_type, "tier": "obstruction" if r.obstruction else "general",
                         "why": "-"}, ensure_ascii=False) for r in load_corpus().reports[:600]]
    (corpus_dir / "a.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tables = load_keywords()
    cache = tmp_path / "cache"
    first = load_model(tables, corpus_dir, cache)
    stamp = (cache / MODEL_CACHE_FILE).stat().st_mtime_ns
    assert load_model(tables, corpus_dir, cache).fingerprint == first.fingerprint
    assert (cache / MODEL_CACHE_FILE).stat().st_mtime_ns == stamp  # read, not retrained
    (corpus_dir / "a.jsonl").write_text("\n".join(lines[:500]) + "\n", encoding="utf-8")
    assert load_model(tables, corpus_dir, cache).fingerprint != first.fingerprint  # a new corpus retrains
    (cache / MODEL_CACHE_FILE).write_bytes(b"damaged")
    assert load_model(tables, corpus_dir, cache) is not None  # a damaged cache is rebuilt
    assert CorpusModel.from_bytes((cache / MODEL_CACHE_FILE).read_bytes())
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_model(tables, empty, cache) is None  # no corpus: the tables decide alone


# -- the model beside the tables (rule 7) ---------------------------------------------


@pytest.mark.parametrize("name", UNSEEN_FLOORS)
def test_unseen_set_floors(layered, name):
    rows = _rows(name)
    m = _measure(layered, rows)
    top1, obstruction, to_office = UNSEEN_FLOORS[name]
    assert m["top1"] >= top1 and m["obstruction_recall"] >= obstruction and m["routable_to_office"] <= to_office, m
    alone = _measure(layered.with_model(None), rows)
    assert alone["top1"] == pytest.approx(UNSEEN_TABLES[name], abs=0.02)  # what the model is measured against


def test_eval_and_holdout_with_the_model(layered):
    eval_rows = _rows("triage_eval.jsonl")
    m = _measure(layered, eval_rows)
    assert m["top1"] >= 0.975 and m["obstruction_recall"] == 1.0 and m["routable_to_office"] <= 0.002, m
    assert _measure(layered, _rows("triage_holdout.jsonl"))["top1"] == 1.0


def test_unroutable_text_still_goes_to_the_office(layered):
    nulls = [r["text"] for path in sorted(DATA.glob("*.jsonl")) for r in _rows(path.name) if r["unit_type"] is None]
    routed = [t for t in nulls if not layered.classify(t).needs_office]
    # 10 of 131 when written (the tables alone route 7); 11 of 151 since sets 27-29
    # joined the corpus: "老婆我今晚不回去吃了，工地加班" now goes to 公安.
    assert len(nulls) >= 150 and len(routed) <= 11, routed
    for text in ("你好", "在吗", "好的谢谢", "明天的调度会几点开"):
        assert layered.classify(text).needs_office, text


def test_the_tables_own_examples_stay_right(layered):
    for text, unit_type in layered.tables.examples():
        assert layered.classify(text).unit_type == unit_type, text


def test_the_model_catches_an_obstruction_the_tables_have_no_word_for(layered):
    text = "抽水泵老是被人关掉，昨晚又关了，基坑进了半米水，抓到现行是隔壁村的"  # set 24
    alone = layered.with_model(None).classify(text)
    t = layered.classify(text)
    assert alone.tier != "obstruction", alone
    assert t.tier == "obstruction" and t.unit_type == "public_security", t
    # The model's n-grams say why, as words: not "了半" (…进了半米水).
    assert t.tier_words and all(layered.tokenizer.FREQ.get(w) for w in t.tier_words), t.tier_words


def test_the_model_routes_what_the_tables_cannot_decide(layered):
    rows = [r for path in sorted(DATA.glob("triage_unseen*.jsonl")) for r in _rows(path.name)]
    rescued = []
    for row in rows:
        alone = layered.with_model(None).classify(row["text"])
        if alone.needs_office and row["unit_type"] is not None:
            t = layered.classify(row["text"])
            if t.unit_type == row["unit_type"] and t.tier != "obstruction":  # rule 7's unit, not its tier
                rescued.append(t)
    assert len(rescued) >= 8  # 9 when written
    for t in rescued:
        assert 0 < t.confidence <= 0.5 and t.matched_words(), t  # never as sure as the tables; says why


def test_a_report_that_asks_a_unit_still_goes_to_it(layered):
    t = layered.classify("村民围着搅拌站不让出车，请镇政府出面把补偿谈下来")
    assert t.tier == "obstruction" and t.unit_type == "county_government"
    assert t.candidates[1][0] == "public_security"
