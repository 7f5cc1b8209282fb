"""config/keywords.py: loading and validating the triage keyword tables."""

from __future__ import annotations

import copy
import dataclasses
import tomllib

import pytest

from config.keywords import KeywordTables, load_keywords, normalize, parse_keywords
from config.settings import PACKAGE_DIR, ConfigError
from config.vocabulary import UNIT_TYPES

REAL_FILE = PACKAGE_DIR / "keywords.toml"


@pytest.fixture(scope="module")
def real_doc() -> dict:
    with REAL_FILE.open("rb") as fh:
        return tomllib.load(fh)


@pytest.fixture
def doc(real_doc) -> dict:
    return copy.deepcopy(real_doc)


def refused(doc: dict, key: str, reason_part: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_keywords(doc, "keywords.toml")
    err = info.value
    assert err.file == "keywords.toml"
    assert err.key == key, err
    assert reason_part in err.problem, err
    return err


# -- the real file ---------------------------------------------------------------


def test_real_file_loads_with_every_unit_type():
    tables = load_keywords()
    assert isinstance(tables, KeywordTables)
    assert list(tables.types) == list(UNIT_TYPES)
    assert set(tables.tiers) == {"obstruction", "major"}
    for name, table in tables.types.items():
        assert table.words, name
        assert table.examples, name  # the tables' own cases, used by the learning guard
    assert tables.params.obstruction_unit == "public_security"
    assert tables.source.endswith("keywords.toml")


def test_tables_are_frozen():
    tables = load_keywords()
    with pytest.raises(dataclasses.FrozenInstanceError):
        tables.params = None  # type: ignore[misc]
    with pytest.raises(TypeError):
        tables.types["approval"].words["施工许可证"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        tables.types["approval"] = None  # type: ignore[index]


def test_issue_words_are_present():
    tables = load_keywords()
    words = {name: set(t.words) for name, t in tables.types.items()}
    expected = {
        "approval": ["施工许可证", "立项", "能评", "环评批复", "水土保持", "防洪论证"],
        "natural_resources": ["用地指标", "林地", "供地", "规划许可", "基本农田"],
        "ecology": ["排污许可", "扬尘", "扬尘停工", "总量指标"],
        "power": ["临时用电", "变压器", "供电"],
        "public_security": ["阻工", "扰工", "堵门", "闹事", "拦车", "堵路"],
        "statistics": ["入库纳统", "入库", "纳统"],
        "human_resources": ["讨薪", "欠薪", "用工"],
        "financial_office": ["贷款", "融资"],
        "county_government": ["征地拆迁", "青苗补偿", "迁坟"],
    }
    for name, ws in expected.items():
        assert set(ws) <= words[name], (name, set(ws) - words[name])
    obstruction = set(tables.tiers["obstruction"].words)
    assert {"阻工", "扰工", "堵门", "闹事", "拦车", "堵路"} <= obstruction
    major = set(tables.tiers["major"].words)
    assert {"重大", "跨部门", "省级审批", "基本农田", "整村搬迁"} <= major


def test_words_are_normalised(doc):
    doc["types"]["power"]["words"]["１０ＫＶ专线"] = 2
    tables = parse_keywords(doc)
    assert "10kv专线" in tables.types["power"].words
    assert normalize("ＡＢＣ，１２") == "abc,12"


def test_normalize_is_nfkc_lower_case_on_every_report():
    import json
    import unicodedata
    from pathlib import Path

    texts = [json.loads(line)["text"] for path in sorted((Path(__file__).parent / "data").glob("triage_*.jsonl"))
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts += ["ｆｕｌｌ　ｗｉｄｔｈ！", "①号楼", "㎡ ㎞ ℃", "ﬁ", "Ⅻ", "ｶﾀｶﾅ", "\u3000", "ＰＭ２．５"]
    for text in texts:
        assert normalize(text) == unicodedata.normalize("NFKC", text).lower(), text


def test_vocabulary_and_examples():
    tables = load_keywords()
    vocab = tables.vocabulary()
    assert "施工许可证" in vocab and "阻工" in vocab and "堵点" in vocab  #堵点: an extra word
    assert ("施工许可证报上去一个月了还没批", "approval") in tables.examples()


# -- each refusal ---------------------------------------------------------------


def test_unknown_unit_type(doc):
    doc["types"]["tourism"] = {"words": {"景区": 3}}
    refused(doc, "types.tourism", "unknown unit type")


def test_missing_unit_type(doc):
    del doc["types"]["statistics"]
    refused(doc, "types.statistics", "missing")


def test_empty_word(doc):
    doc["types"]["approval"]["words"]["  "] = 2
    refused(doc, "types.approval.words.  ", "empty word")


def test_word_with_space_or_punctuation(doc):
    doc["types"]["approval"]["words"]["施工 许可"] = 2
    refused(doc, "types.approval.words.施工 许可", "never be one token")
    doc = copy.deepcopy(doc)
    del doc["types"]["approval"]["words"]["施工 许可"]
    doc["types"]["approval"]["words"]["许可，证"] = 2
    refused(doc, "types.approval.words.许可，证", "never be one token")


@pytest.mark.parametrize("weight", [0, -1, 10.5, "3", True, float("nan"), float("inf")])
def test_bad_weight(doc, weight):
    doc["types"]["water"]["words"]["取水"] = weight
    with pytest.raises(ConfigError) as info:
        parse_keywords(doc, "keywords.toml")
    assert info.value.key == "types.water.words.取水"


def test_bad_tier_weight_and_threshold(doc):
    doc["tiers"]["obstruction"]["words"]["阻工"] = 0
    refused(doc, "tiers.obstruction.words.阻工", "must be in")
    doc["tiers"]["obstruction"]["words"]["阻工"] = 3
    doc["tiers"]["major"]["threshold"] = -2
    refused(doc, "tiers.major.threshold", "must be in")


def test_words_must_be_a_table(doc):
    doc["types"]["energy"]["words"] = ["用能指标", "能耗"]
    refused(doc, "types.energy.words", "must be a table of word = weight")


def test_type_must_be_a_table(doc):
    doc["types"]["energy"] = "用能指标"
    refused(doc, "types.energy", "must be a table")


def test_type_without_words(doc):
    doc["types"]["energy"] = {"examples": ["用能指标不够"]}
    refused(doc, "types.energy.words", "missing")
    doc["types"]["energy"] = {"words": {}}
    refused(doc, "types.energy.words", "no words")


def test_unknown_key_in_type(doc):
    doc["types"]["energy"]["wrods"] = {"能耗": 3}
    refused(doc, "types.energy.wrods", "unknown key")


def test_unknown_top_level_key(doc):
    doc["typos"] = {}
    refused(doc, "typos", "unknown key")


def test_word_both_for_and_against(doc):
    doc["types"]["transport"]["negative"]["公路"] = 1
    refused(doc, "types.transport.negative.公路", "both counts for and against")


def test_addressed_words_must_be_the_types_own(doc):
    doc["types"]["county_government"]["addressed"] = ["县里", "派出所"]
    refused(doc, "types.county_government.addressed.派出所", "one of the type's words")
    doc["types"]["county_government"]["addressed"] = "县里"
    refused(doc, "types.county_government.addressed", "must be a list")


def test_request_words_are_a_word_list(doc):
    doc["classifier"]["requests"] = "请"
    refused(doc, "classifier.requests", "must be a list")
    doc["classifier"]["requests"] = ["请", ""]
    refused(doc, "classifier.requests[1]", "")


def test_direct_request_words_are_a_word_list(doc):
    doc["classifier"]["direct_requests"] = {"要求": 1}
    refused(doc, "classifier.direct_requests", "must be a list")


def test_duplicate_after_normalisation(doc):
    doc["types"]["power"]["words"]["１０ｋｖ"] = 3  # "10kv" is already there
    refused(doc, "types.power.words.１０ｋｖ", "duplicate word")


def test_unknown_and_general_tier(doc):
    bad = copy.deepcopy(doc)
    bad["tiers"]["urgent"] = {"threshold": 3, "words": {"急": 3}}
    refused(bad, "tiers.urgent", "unknown tier")
    bad = copy.deepcopy(doc)
    bad["tiers"]["general"] = {"threshold": 3, "words": {"一般": 3}}
    refused(bad, "tiers.general", "takes no words")
    bad = copy.deepcopy(doc)
    del bad["tiers"]["major"]
    refused(bad, "tiers.major", "missing")


def test_tier_char_cue_must_be_one_character(doc):
    doc["tiers"]["obstruction"]["chars"]["堵门"] = 3
    refused(doc, "tiers.obstruction.chars.堵门", "single character")


def test_classifier_parameters(doc):
    bad = copy.deepcopy(doc)
    bad["classifier"]["ambiguity_ratio"] = 1.5
    refused(bad, "classifier.ambiguity_ratio", "must be in")
    bad = copy.deepcopy(doc)
    bad["classifier"]["obstruction_unit"] = "police"
    refused(bad, "classifier.obstruction_unit", "unknown unit type")
    bad = copy.deepcopy(doc)
    bad["classifier"]["negators"] = ["无", 1]
    refused(bad, "classifier.negators[1]", "must be a string")
    bad = copy.deepcopy(doc)
    bad["classifier"]["speed"] = 3
    refused(bad, "classifier.speed", "unknown key")


def test_examples_must_be_texts(doc):
    doc["types"]["water"]["examples"] = "取水许可证还没批"
    refused(doc, "types.water.examples", "list of report texts")
    doc["types"]["water"]["examples"] = ["取水许可证还没批", ""]
    refused(doc, "types.water.examples[1]", "non-empty string")


def test_extra_words_validated(doc):
    doc["tokenizer"]["extra_words"] = ["堵点", "堵点"]
    refused(doc, "tokenizer.extra_words[1]", "duplicate word")


def test_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_keywords(missing)
    assert info.value.file == str(missing) and "not found" in info.value.problem
    broken = tmp_path / "keywords.toml"
    broken.write_text('[types.approval.words]\n"施工许可证" = \n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_keywords(broken)
    assert info.value.file == str(broken) and "not valid TOML" in info.value.problem


def test_loaded_from_another_file(tmp_path, real_doc):
    # A valid copy elsewhere loads, and errors name that file.
    path = tmp_path / "kw.toml"
    path.write_text(REAL_FILE.read_text(encoding="utf-8").replace('"阻工" = 4', '"阻工" = 40'), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_keywords(path)
    assert info.value.file == str(path)
    assert info.value.key == "types.public_security.words.阻工"
