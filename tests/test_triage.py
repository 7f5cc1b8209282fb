"""handlers/triage.py: the classifier, its own tokenizer, 属地 resolution, JSON output.

Accuracy floors are the figures reached on tests/data (see the closing note of
issue 3); lowering one needs a reason in the commit message.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jieba
import pytest

from config.keywords import load_keywords, normalize
from handlers.triage import CACHE_FILE, Classifier, Triage, UnitRef, build_classifier, classify_to_json, resolve_unit

from tests.triage_support import REPO
from tests.triage_support import measure as _measure
from tests.triage_support import rows as _rows

# Floors: the figures reached (eval 885/890, obstruction 148/149; holdout 100/100).
EVAL_TOP1_FLOOR = 0.994
EVAL_OBSTRUCTION_RECALL_FLOOR = 0.993
EVAL_TIER_FLOOR = 0.998
HOLDOUT_TOP1_FLOOR = 0.99
HOLDOUT_OBSTRUCTION_RECALL_FLOOR = 1.0
# Routable reports the classifier still sends to the office (3 of 829 in eval).
EVAL_ROUTABLE_TO_OFFICE_MAX = 0.005
# triage_independent*.jsonl: each written by a separate session that never saw the
# tables or the other sets (labels from the duty annex and DOMAIN.md only), scored
# as first seen, then the tables gained the duty words and obstruction forms it
# showed missing, and it stayed here as a floor. As first seen (top-1 of the
# routable reports; obstruction recall; decoys called obstruction):
#
#   set  what                                      top-1    obstruction  decoys
#   1    mixed, casual                             88.7%    30/30
#   2    mixed, very varied                        84.4%    19/25
#   3    mixed (after rounds 1-2)                  89.0%    15/19
#   5    18 liaison voices (after 1-3)             91.1%    26/30
#   4    formal reports + decoys (after 1-5)       94.8%    25/25        4
#   6    rural county, voice-to-text               91.1%    29/30        4
#   7    city projects, technical                  95.8%    23/25        2
#   8    a typical week, 250                       92.5%    32/35        6
#   9    110 obstruction + 50 decoys               85.8%    86/110       4
#   10   every department's less obvious duties    86.8%    19/20        2
#   11   an ordinary month, 220                    88.7%    24/25        2
#   12   90 obstruction (novel acts) + 50 decoys   81.8%    69/90        7
#   14   80 obstruction (novel acts) + 45 decoys   86.2%    72/80        7
#   13   two months of a city's liaisons           92.5%    25/25        6
#   15   "a held-out exam a strict grader would     89.6%    31/35       10
#        set" (after all of the above)
#   16   the same brief, another examiner           90.8%    31/35        4
#   17   the same brief, a year in northern China   87.1%    36/39        5
#   18   the same brief, central/southern dialect   90.4%    35/39        2
#   19   80 obstruction in 80 voices + 40 decoys    77.9%    68/80        7
#   20   an exam over every department's duties     92.7%    25/25        2
#   21   60 obstruction, no clichés, 60 projects    84.2%    48/60        9
#   27   a coastal port city (30 obstruction,       93.6%    30/30        7
#        15 decoys, 10 unroutable)
#   28   the same mix, a south-western mountain     92.1%    30/30        7
#        county, dialect
#   29   the same mix, a large city's metro and     94.3%    28/30        3
#        urban renewal
#
# Sets 27-29 were scored as first seen and went into the model's corpus as they
# were: the tables did not change for them.
# Along the way: a unit asked to act takes the report (rule 3 of handlers/triage.py:
# +2 on set 6 unseen, nothing lost elsewhere); the clause asking may come after the
# one first naming it; 要求 asks only the unit right after it. Telecom cables (光缆)
# stay out of the tables on purpose: they are what tests/test_triage_learn.py learns.
# These sets now live in config/triage_corpus: the model of handlers/triage_model.py
# learns from them, so they measure the tables alone here (the `classifier`
# fixture has no model); tests/test_triage_model.py measures tables + model on sets
# neither has seen.
# Floors: (top-1 of all rows, obstruction recall), just under what the tables reach.
INDEPENDENT_FLOORS = {
    "triage_independent.jsonl": (0.96, 1.0), "triage_independent2.jsonl": (0.97, 1.0),
    "triage_independent3.jsonl": (0.97, 1.0), "triage_independent4.jsonl": (0.98, 1.0),
    "triage_independent5.jsonl": (0.95, 1.0), "triage_independent6.jsonl": (0.94, 1.0),
    "triage_independent7.jsonl": (0.965, 1.0), "triage_independent8.jsonl": (0.96, 1.0),
    "triage_independent9.jsonl": (0.95, 0.97), "triage_independent10.jsonl": (0.935, 1.0),
    "triage_independent11.jsonl": (0.965, 1.0), "triage_independent12.jsonl": (0.94, 0.97),
    "triage_independent13.jsonl": (0.94, 1.0), "triage_independent14.jsonl": (0.92, 0.98),
    "triage_independent15.jsonl": (0.95, 0.97), "triage_independent16.jsonl": (0.965, 1.0),
    "triage_independent17.jsonl": (0.94, 0.97), "triage_independent18.jsonl": (0.94, 0.97),
    "triage_independent19.jsonl": (0.85, 0.97), "triage_independent20.jsonl": (0.94, 1.0),
    "triage_independent21.jsonl": (0.91, 0.95), "triage_independent27.jsonl": (0.935, 1.0),
    "triage_independent28.jsonl": (0.92, 1.0), "triage_independent29.jsonl": (0.94, 0.93),
}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jieba-cache")


@pytest.fixture(scope="module")
def classifier(cache_dir) -> Classifier:
    return build_classifier(load_keywords(), cache_dir)


# -- the data files ---------------------------------------------------------------


DATA_FILES = ["triage_eval.jsonl", "triage_holdout.jsonl", *INDEPENDENT_FLOORS]


@pytest.mark.parametrize("name", DATA_FILES)
def test_data_files_are_well_formed(name):
    from config.vocabulary import TIERS, UNIT_TYPES

    rows = _rows(name)
    texts = [r["text"] for r in rows]
    assert len(texts) == len(set(texts))
    for row in rows:
        assert set(row) == {"text", "unit_type", "tier", "why"}, row
        assert row["unit_type"] is None or row["unit_type"] in UNIT_TYPES, row
        assert row["tier"] in TIERS and row["why"].strip(), row
    assert len(rows) >= (300 if name == "triage_eval.jsonl" else 100)


def test_data_files_do_not_overlap():
    seen: set[str] = set()
    for name in DATA_FILES:
        texts = {r["text"] for r in _rows(name)}
        assert not texts & seen, name
        seen |= texts


def test_eval_set_floors(classifier):
    rows = _rows("triage_eval.jsonl")
    assert sum(r["tier"] == "obstruction" for r in rows) >= 50
    assert sum(r["tier"] == "major" for r in rows) >= 30
    m = _measure(classifier, rows)
    assert m["top1"] >= EVAL_TOP1_FLOOR, m
    assert m["obstruction_recall"] >= EVAL_OBSTRUCTION_RECALL_FLOOR, m
    assert m["tier"] >= EVAL_TIER_FLOOR, m
    assert m["routable_to_office"] <= EVAL_ROUTABLE_TO_OFFICE_MAX, m


def test_holdout_floors(classifier):
    m = _measure(classifier, _rows("triage_holdout.jsonl"))
    assert m["top1"] >= HOLDOUT_TOP1_FLOOR, m
    assert m["obstruction_recall"] >= HOLDOUT_OBSTRUCTION_RECALL_FLOOR, m


@pytest.mark.parametrize("name", INDEPENDENT_FLOORS)
def test_independent_set_floors(classifier, name):
    m = _measure(classifier, _rows(name))
    top1, obstruction_recall = INDEPENDENT_FLOORS[name]
    assert m["top1"] >= top1, m
    assert m["obstruction_recall"] >= obstruction_recall, m


@pytest.mark.parametrize("name", DATA_FILES)
def test_unroutable_text_goes_to_the_office(classifier, name):
    for row in _rows(name):
        if row["unit_type"] is None:
            t = classifier.classify(row["text"])
            assert t.needs_office and t.unit_type is None and t.reason in ("no_match", "ambiguous"), row


def test_tables_route_their_own_examples(classifier):
    for text, unit_type in classifier.tables.examples():
        assert classifier.classify(text).unit_type == unit_type, text


# -- behaviour ---------------------------------------------------------------------


def test_result_shape(classifier):
    t = classifier.classify("施工许可证报上去半个月了还没批下来，麻烦催一下审批局")
    assert isinstance(t, Triage)
    assert t.unit_type == "approval" and not t.needs_office and t.reason is None
    assert t.candidates[0][0] == "approval"
    assert "施工许可证" in t.matched["approval"] and "审批局" in t.matched["approval"]
    assert 0.0 < t.confidence <= 1.0
    assert t.tier == "general" and t.tier_words == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.unit_type = "power"  # type: ignore[misc]


def test_candidates_ranked(classifier):
    t = classifier.classify("用地指标没落实，林地手续也卡着，临时用电也没接")
    scores = [s for _, s in t.candidates]
    assert scores == sorted(scores, reverse=True)
    assert t.unit_type == "natural_resources" and "power" in dict(t.candidates)


@pytest.mark.parametrize("text", ["你好", "在吗", "项目进展顺利", "收到，谢谢", "", "   ", "？？？", "ok"])
def test_no_match(classifier, text):
    t = classifier.classify(text)
    assert t.needs_office and t.reason == "no_match" and t.unit_type is None
    assert t.confidence == 0.0 and t.tier == "general"


def test_ambiguous_is_never_a_silent_guess(classifier):
    # Two problems of equal weight in one clause: the office decides.
    t = classifier.classify("用地指标和施工许可证都没办下来")
    assert t.needs_office and t.reason == "ambiguous" and t.unit_type is None
    assert {c for c, _ in t.candidates[:2]} == {"natural_resources", "approval"}
    assert t.confidence < 0.5


def test_several_problems_main_first_and_secondary(classifier):
    t = classifier.classify("施工许可证还没批下来，另外临时用电也没接")
    assert t.unit_type == "approval"
    assert t.secondary == ("power",)
    t = classifier.classify("变压器还没装，施工许可证也没批")
    assert t.unit_type == "power" and t.secondary == ("approval",)


def test_obstruction_goes_to_police_with_cause_secondary(classifier):
    t = classifier.classify("村民阻工，说青苗补偿没给够")
    assert t.tier == "obstruction" and t.unit_type == "public_security"
    assert "阻工" in t.tier_words
    assert "county_government" in t.secondary
    t = classifier.classify("讨薪的工人把项目部大门堵了")
    assert t.tier == "obstruction" and t.unit_type == "public_security"
    assert "human_resources" in t.secondary


def test_a_report_asking_a_unit_to_act_goes_to_it(classifier):
    t = classifier.classify("风光储一体化项目涉及能源、自然资源、电网好几家，需要发改委出面统筹")
    assert t.unit_type == "development" and not t.needs_office
    # Named, not asked: the duty words decide.
    assert classifier.classify("施工许可证还没下来，发改委的人也说不清").unit_type == "approval"


def test_obstruction_naming_the_government_to_act_goes_to_it_police_second(classifier):
    t = classifier.classify("村民嫌补偿低，围着挖机不让干，请镇政府出面把补偿谈下来")
    assert t.tier == "obstruction" and t.unit_type == "county_government"
    assert t.secondary[0] == "public_security"
    # Naming the police, or nobody, leaves the police in the lead.
    assert classifier.classify("村民嫌补偿低，围着挖机不让干").unit_type == "public_security"
    assert classifier.classify("村民嫌补偿低，围着挖机不让干，请派出所出警").unit_type == "public_security"
    # Asked in a later clause than the one first naming it.
    t = classifier.classify("村民把搅拌站进出口堵了，租金由镇政府代付，请镇政府尽快兑付")
    assert t.tier == "obstruction" and t.unit_type == "county_government"
    # 要求 asks only the unit named right after it.
    assert classifier.classify("村民堵在项目部门口，要求县里给个说法").unit_type == "county_government"
    assert classifier.classify("镇上一伙人要求我们从他们店里买钢筋，不然就来砸场子").unit_type == "public_security"
    # Naming the government without asking it to act does not.
    assert classifier.classify("村民围着挖机不让干，镇政府来人劝了也不走").unit_type == "public_security"


@pytest.mark.parametrize(
    "text",
    [
        "村民把路堵了，车进不去",
        "有人天天来工地闹事",
        "罐车在村口被拦下",
        "有人恶意扰工",
        "施工人员被围殴",  # character cue 殴
        "一群人冲进工地，把工具抢走了",
        "村民不让施工",
    ],
)
def test_obstruction_tier(classifier, text):
    t = classifier.classify(text)
    assert t.tier == "obstruction" and t.unit_type == "public_security", (text, t)


@pytest.mark.parametrize(
    "text",
    [
        "环保局不让施工，说要等重污染预警解除",  # an authority, not people obstructing
        "路政不让大车上路",
        "运输车辆超限被路政扣了",
        "项目进展顺利，无阻工、扰工情况",  # negated
        "没有发生阻工情况，但是临时用电还没接",
        "交警拦车检查",
        "施工许可证被退回了",
    ],
)
def test_not_obstruction(classifier, text):
    assert classifier.classify(text).tier != "obstruction", text


def test_negated_obstruction_progress_note(classifier):
    t = classifier.classify("项目进展顺利，无阻工、扰工情况")
    assert t.needs_office and t.unit_type is None


def test_major_tier(classifier):
    for text in ["项目涉及占用基本农田，需要报国务院批", "整村搬迁安置方案定不下来", "跨部门的重大问题，协调不动"]:
        assert classifier.classify(text).tier == "major", text
    t = classifier.classify("用地涉及永久基本农田，调整要报省政府批准")
    assert t.tier == "major" and "永久基本农田" in t.tier_words


def test_obstruction_wins_over_major(classifier):
    t = classifier.classify("整村搬迁谈不拢，村民堵路阻工")
    assert t.tier == "obstruction"


def test_clause_order_decides_close_calls(classifier):
    a = classifier.classify("土地证还没办，银行贷款也卡着")
    b = classifier.classify("银行贷款卡着，土地证也还没办")
    assert a.unit_type == "natural_resources" and b.unit_type == "financial_office"


def test_keyword_inside_longer_token_counts(classifier):
    # 公安局 / 水利局 are dictionary words; 公安 / 水利 are keywords inside them.
    assert classifier.classify("派出所说要等公安局批爆破").unit_type == "public_security"
    t = classifier.classify("省交通厅迟迟不批")
    assert "transport" in dict(t.candidates)


def test_typos_and_full_width(classifier):
    assert classifier.classify("ＰＭ１０超标被通报").unit_type == "ecology"
    assert classifier.classify("村民阻功两天了").tier == "obstruction"
    assert classifier.classify("变压气容量不够，申请增容").unit_type == "power"


# -- the tokenizer ----------------------------------------------------------------


def _global_state():
    dt = jieba.dt
    return dt.initialized, len(dt.FREQ), dt.total, dict(dt.user_word_tag_tab)


class _Untouchable:
    def __getattr__(self, name):
        raise AssertionError(f"jieba's global tokenizer was used ({name})")


def test_own_tokenizer_leaves_jieba_global_untouched(cache_dir, monkeypatch):
    before = _global_state()

    def boom(*args, **kwargs):
        raise AssertionError("a jieba module-level helper was called")

    # While building and classifying, jieba's global tokenizer and helpers explode.
    for name in ("cut", "lcut", "cut_for_search", "add_word", "suggest_freq", "initialize", "load_userdict"):
        monkeypatch.setattr(jieba, name, boom)
    monkeypatch.setattr(jieba, "dt", _Untouchable())
    built = build_classifier(load_keywords(), cache_dir)
    assert built.classify("施工许可证还没批，村民堵路").unit_type == "public_security"
    assert built.classify("临时用电还没接").unit_type == "power"
    monkeypatch.undo()
    assert _global_state() == before  # not initialised by us, nothing added
    assert built.tokenizer is not jieba.dt
    assert "入库纳统" in built.tokenizer.FREQ
    assert "入库纳统" not in jieba.dt.FREQ


def test_domain_words_stay_whole(classifier):
    for text, word in [
        ("施工许可证还没批下来", "施工许可证"),
        ("用地指标还差40亩", "用地指标"),
        ("项目还没入库纳统", "入库纳统"),
        ("青苗补偿谈不拢", "青苗补偿"),
        ("临时用电没接", "临时用电"),
        ("环评批复没下来", "环评批复"),
        ("排污许可证申请卡住了", "排污许可证"),
    ]:
        assert word in classifier.tokens(text), (word, classifier.tokens(text))


def test_segmentation_identical_to_jieba_without_hmm(classifier):
    texts = [r["text"] for r in _rows("triage_eval.jsonl")] + [
        "10kv线路迁改 ABC abc12，35kV！！",
        "  前后有空格  ",
        "PM2.5超标；VOCs治理",
        "a",
        "",
    ]
    for text in texts:
        norm = normalize(text)
        assert classifier.tokens(text) == classifier.tokenizer.lcut(norm, HMM=False), text


def test_jieba_cache_is_written_then_reused(classifier, cache_dir):
    # The module's classifier was built into an empty cache_dir (cold): it wrote the cache.
    cache = cache_dir / CACHE_FILE
    assert cache.is_file() and cache.stat().st_size > 1_000_000
    stamp = cache.stat().st_mtime_ns
    warm = build_classifier(load_keywords(), cache_dir)
    assert cache.stat().st_mtime_ns == stamp  # loaded, not rebuilt
    assert warm.tokens("施工许可证还没批") == classifier.tokens("施工许可证还没批")
    assert warm.tokenizer.FREQ.keys() == classifier.tokenizer.FREQ.keys()


@pytest.mark.parametrize("damage", [b"", b"not marshal", b"\xe9\x00\x00"])
def test_a_damaged_jieba_cache_is_rebuilt(tmp_path, damage):
    (tmp_path / CACHE_FILE).write_bytes(damage)
    rebuilt = build_classifier(load_keywords(), tmp_path)
    assert rebuilt.tokens("施工许可证还没批") == ["施工许可证", "还", "没", "批"]
    assert (tmp_path / CACHE_FILE).stat().st_size > 1_000_000


def test_no_jieba_at_import_time():
    code = "import sys, handlers.triage, handlers.triage_learn, config.keywords; print('jieba' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


# -- JSON line for `kpbot classify` ---------------------------------------------


def test_classify_to_json(classifier):
    line = classify_to_json(classifier, "临时用电一直没接，村民还堵了路", "尧都区供电公司")
    assert list(line) == ["text", "unit_type", "unit", "tier", "confidence", "matched", "candidates", "needs_office"]
    assert line["text"] == "临时用电一直没接，村民还堵了路"
    assert line["unit_type"] == "public_security" and line["tier"] == "obstruction"
    assert line["unit"] == "尧都区供电公司"  # whatever the caller resolved for the unit type
    assert isinstance(line["confidence"], float) and 0 < line["confidence"] <= 1
    assert "堵了" in line["matched"]
    assert all(isinstance(c, list) and len(c) == 2 for c in line["candidates"])
    assert line["needs_office"] is False
    json.dumps(line, ensure_ascii=False)


def test_classify_to_json_needs_office(classifier):
    line = classify_to_json(classifier, "你好", "不该出现")
    assert line == {
        "text": "你好",
        "unit_type": None,
        "unit": None,
        "tier": "general",
        "confidence": 0.0,
        "matched": [],
        "candidates": [],
        "needs_office": True,
    }


# -- 属地 resolution ---------------------------------------------------------------

PARENTS = {"city": None, "yaodu": "city", "hongtong": "city", "town": "hongtong"}
UNITS = [
    UnitRef("city-nr", "市规划和自然资源局", "natural_resources", "city"),
    UnitRef("yaodu-nr", "尧都区规划和自然资源局", "natural_resources", "yaodu"),
    UnitRef("city-power", "国网临汾供电公司", "power", "city"),
    UnitRef("hongtong-gov", "洪洞县人民政府", "county_government", "hongtong"),
]


def test_county_project_goes_to_its_county_unit():
    assert resolve_unit("natural_resources", "yaodu", UNITS, PARENTS).key == "yaodu-nr"


def test_county_without_the_unit_falls_back_to_the_city():
    assert resolve_unit("natural_resources", "hongtong", UNITS, PARENTS).key == "city-nr"
    assert resolve_unit("power", "yaodu", UNITS, PARENTS).name == "国网临汾供电公司"


def test_city_project_goes_to_the_city_unit():
    assert resolve_unit("natural_resources", "city", UNITS, PARENTS).key == "city-nr"
    assert resolve_unit("natural_resources", None, UNITS, PARENTS).key == "city-nr"


def test_deeper_office_walks_up_the_hierarchy():
    assert resolve_unit("county_government", "town", UNITS, PARENTS).key == "hongtong-gov"
    assert resolve_unit("natural_resources", "town", UNITS, PARENTS).key == "city-nr"


def test_no_unit_of_that_type():
    assert resolve_unit("statistics", "yaodu", UNITS, PARENTS) is None
    assert resolve_unit("county_government", "yaodu", UNITS, PARENTS) is None  # only 洪洞 has one
    assert resolve_unit(None, "yaodu", UNITS, PARENTS) is None
    assert resolve_unit("power", "nowhere", UNITS, PARENTS) is None


def test_cycle_in_the_office_map_terminates():
    assert resolve_unit("power", "a", UNITS, {"a": "b", "b": "a"}) is None


def test_unit_ref_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        UNITS[0].name = "x"  # type: ignore[misc]
