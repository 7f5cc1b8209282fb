"""Triage keyword tables: load `keywords.toml` and validate it into frozen dataclasses.

Nothing is read at import time: call `load_keywords()` (or `parse_keywords()` on an
already-parsed TOML document). Every problem raises `ConfigError(file, key, reason)`
naming the dotted key, so a bad table is refused at start-up.

The file has these parts (see config/keywords.toml):

- ``[classifier]``: thresholds (min_score, ambiguity_ratio, secondary_ratio,
  clause_decay, min_clause_factor), the unit type that handles obstruction, the
  negators that cancel an obstruction word, and the words that ask a unit to act
  (requests, direct_requests);
- ``[tokenizer] extra_words``: words kept whole by the tokenizer but never scored;
- ``[tiers.obstruction]`` / ``[tiers.major]``: threshold, weighted ``words``,
  ``negative`` words (counting against the tier) and ``chars`` (single characters
  that count inside any word that is neither a keyword nor an extra word);
- ``[model]``: how far the model learned from config/triage_corpus may decide
  where the tables are unsure (see rule 7 of handlers/triage.py);
- ``[types.<unit type>]``: ``examples`` (the table's own cases), ``words`` and
  ``negative`` (weighted words that count for / against the type), ``addressed``
  (those of its words that name it as the one to act), one table for every key of
  ``config.vocabulary.UNIT_TYPES`` and no other.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from config.settings import PACKAGE_DIR, ConfigError, read_toml
from config.vocabulary import TIERS, UNIT_TYPES

KEYWORDS_FILE = "keywords.toml"
MAX_WEIGHT = 10.0
MAX_WORD_LENGTH = 20
# Tiers that have word tables; "general" is what remains.
SCORED_TIERS: tuple[str, ...] = ("obstruction", "major")

# A keyword must be one run of the characters the tokenizer keeps together
# (jieba's re_han_default): otherwise it could never come out as one token.
_WORD_RE = re.compile(r"^[\u4E00-\u9FD5a-zA-Z0-9+#&._%\-]+$")

_CLASSIFIER_DEFAULTS: dict[str, float] = {
    "min_score": 2.0,
    "ambiguity_ratio": 0.9,
    "secondary_ratio": 0.35,
    "clause_decay": 0.15,
    "min_clause_factor": 0.55,
    "extra_word_factor": 0.75,
}

# The learned model's place beside the tables (handlers/triage.py, rule 7).
_MODEL_DEFAULTS: dict[str, float] = {
    "alpha": 0.1,
    "temperature": 4.0,
    "tables_margin": 3.0,
    "min_probability": 0.5,
    "no_match_probability": 0.99,
    "add_obstruction_probability": 0.9,
    "keep_obstruction_probability": 0.2,
}


def normalize(text: str, fold: Callable[[str], str] | None = None) -> str:
    """The form both keywords and reports are matched in: NFKC (full-width to
    half-width), lower-case letters. Chat text is NFKC already but for its
    full-width punctuation, which a table maps first (or `fold`, the same
    mapping in C): then the (fast) check usually spares the (slow, ~17 us per
    200 characters) normalisation."""
    text = fold(text) if fold is not None else text.translate(_full_width())
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return text.lower()


@cache
def _full_width() -> dict[int, str]:
    """Full-width ASCII forms and the ideographic space, as NFKC maps them."""
    return {cp: unicodedata.normalize("NFKC", chr(cp)) for cp in (*range(0xFF01, 0xFF5F), 0x3000)}


@dataclass(frozen=True)
class TypeTable:
    unit_type: str
    words: Mapping[str, float]
    negative: Mapping[str, float]
    examples: tuple[str, ...]
    # The unit's names ("发改委", "县里", "镇政府"): asked to act in a report's
    # clause ("请县里…", "需要镇政府出面"), it takes the report.
    addressed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TierTable:
    tier: str
    threshold: float
    words: Mapping[str, float]
    negative: Mapping[str, float]
    chars: Mapping[str, float]  # single characters that count inside any other word


@dataclass(frozen=True)
class ClassifierParams:
    min_score: float
    ambiguity_ratio: float
    secondary_ratio: float
    clause_decay: float
    min_clause_factor: float
    extra_word_factor: float
    obstruction_unit: str | None
    negators: tuple[str, ...]
    # Words asking someone to act (请, 需要, 希望 ...): a unit's addressed word counts
    # only in a clause that has one ("请县里落实补偿", not "县里来人劝了也不走").
    requests: tuple[str, ...] = ()
    # Words that ask only the unit named right after them ("要求县里…"; but
    # "一伙人要求我们…" asks nobody).
    direct_requests: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelParams:
    """How much the model learned from the corpus may decide (keywords.toml ``[model]``)."""

    alpha: float  # naive Bayes smoothing
    # Naive Bayes counts every overlapping n-gram as independent evidence, so its
    # probabilities are far too sure; they are taken at this temperature.
    temperature: float
    tables_margin: float  # the tables decide alone when their best scores this times the runner-up
    min_probability: float  # the model decides an unsure tables' decision from this probability
    no_match_probability: float  # ... and a report the tables found no word for from this one
    add_obstruction_probability: float  # the model makes a report an obstruction from this probability
    keep_obstruction_probability: float  # ... and undoes the tables' obstruction below this one


DEFAULT_MODEL_PARAMS = ModelParams(**_MODEL_DEFAULTS)


@dataclass(frozen=True)
class KeywordTables:
    types: Mapping[str, TypeTable]
    tiers: Mapping[str, TierTable]
    params: ClassifierParams
    extra_words: tuple[str, ...]
    source: str
    model: ModelParams = DEFAULT_MODEL_PARAMS

    def vocabulary(self) -> frozenset[str]:
        """Every word the tokenizer must keep whole (scored or not)."""
        words: set[str] = set(self.extra_words) | set(self.params.negators) | set(self.params.requests)
        words |= set(self.params.direct_requests)
        for table in self.types.values():
            words.update(table.words)
            words.update(table.negative)
        for tier in self.tiers.values():
            words.update(tier.words)
            words.update(tier.negative)
        return frozenset(words)

    def examples(self) -> tuple[tuple[str, str], ...]:
        """The tables' own cases: (text, unit type) pairs they must route right."""
        return tuple((text, t.unit_type) for t in self.types.values() for text in t.examples)


def load_keywords(path: Path | str | None = None) -> KeywordTables:
    """Read and validate keywords.toml (default: the one beside this module)."""
    file = Path(path) if path is not None else PACKAGE_DIR / KEYWORDS_FILE
    return parse_keywords(read_toml(file), file)


def parse_keywords(data: Mapping[str, Any], file: Path | str = KEYWORDS_FILE) -> KeywordTables:
    """Validate a parsed keywords document; raise ConfigError on the first problem."""
    v = _Validator(str(file))
    v.table(data, "", allowed={"classifier", "tokenizer", "tiers", "types", "model"}, required={"types", "tiers"})
    params = v.classifier(data.get("classifier", {}))
    extra = v.tokenizer(data.get("tokenizer", {}))
    tiers = v.tiers(data["tiers"])
    types = v.types(data["types"])
    model = v.model(data.get("model", {}))
    return KeywordTables(
        types=MappingProxyType(types),
        tiers=MappingProxyType(tiers),
        params=params,
        extra_words=extra,
        source=str(file),
        model=model,
    )


class _Validator:
    def __init__(self, file: str):
        self.file = file

    def fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.file, key or "-", reason)

    # -- structure ---------------------------------------------------------
    def table(self, value: Any, key: str, *, allowed: set[str], required: frozenset[str] | set[str] = frozenset()) -> None:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a table, got {type(value).__name__}")
        for name in value:
            if name not in allowed:
                raise self.fail(_join(key, name), f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for name in sorted(required):
            if name not in value:
                raise self.fail(_join(key, name), "missing")

    def number(self, value: Any, key: str, *, low: float, high: float, low_open: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"must be a number, got {type(value).__name__}")
        number = float(value)
        if not math.isfinite(number):
            raise self.fail(key, "must be a finite number")
        if number < low or (low_open and number == low) or number > high:
            bracket = "(" if low_open else "["
            raise self.fail(key, f"must be in {bracket}{low:g}, {high:g}], got {number:g}")
        return number

    def word(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"word must be a string, got {type(value).__name__}")
        word = normalize(value.strip())
        if not word:
            raise self.fail(key, "empty word")
        if len(word) > MAX_WORD_LENGTH:
            raise self.fail(key, f"word longer than {MAX_WORD_LENGTH} characters")
        if not _WORD_RE.match(word):
            raise self.fail(
                key, f"word {value!r} contains spaces or punctuation and can never be one token"
            )
        return word

    def word_list(self, value: Any, key: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(key, f"must be a list of words, got {type(value).__name__}")
        words: list[str] = []
        for i, item in enumerate(value):
            word = self.word(item, f"{key}[{i}]")
            if word in words:
                raise self.fail(f"{key}[{i}]", f"duplicate word {word!r}")
            words.append(word)
        return tuple(words)

    def weighted(self, value: Any, key: str, *, required: bool) -> Mapping[str, float]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a table of word = weight, got {type(value).__name__}")
        if required and not value:
            raise self.fail(key, "no words")
        out: dict[str, float] = {}
        for raw, weight in value.items():
            wkey = _join(key, raw)
            word = self.word(raw, wkey)
            if word in out:
                raise self.fail(wkey, f"duplicate word {word!r} (after normalisation)")
            out[word] = self.number(weight, wkey, low=0.0, high=MAX_WEIGHT, low_open=True)
        return MappingProxyType(out)

    # -- sections ----------------------------------------------------------
    def classifier(self, value: Any) -> ClassifierParams:
        key = "classifier"
        lists = {"obstruction_unit", "negators", "requests", "direct_requests"}
        self.table(value, key, allowed=set(_CLASSIFIER_DEFAULTS) | lists)
        nums = dict(_CLASSIFIER_DEFAULTS)
        bounds = {
            "min_score": (0.0, 100.0, True),
            "ambiguity_ratio": (0.0, 1.0, True),
            "secondary_ratio": (0.0, 1.0, True),
            "clause_decay": (0.0, 1.0, False),
            "min_clause_factor": (0.0, 1.0, True),
            "extra_word_factor": (0.0, 1.0, False),
        }
        for name, (low, high, low_open) in bounds.items():
            if name in value:
                nums[name] = self.number(value[name], f"{key}.{name}", low=low, high=high, low_open=low_open)
        unit = value.get("obstruction_unit")
        if unit is not None and unit not in UNIT_TYPES:
            raise self.fail(f"{key}.obstruction_unit", f"unknown unit type {unit!r}")
        negators = self.word_list(value.get("negators", []), f"{key}.negators")
        requests = self.word_list(value.get("requests", []), f"{key}.requests")
        direct = self.word_list(value.get("direct_requests", []), f"{key}.direct_requests")
        return ClassifierParams(obstruction_unit=unit, negators=negators, requests=requests, direct_requests=direct,
                                **nums)

    def model(self, value: Any) -> ModelParams:
        self.table(value, "model", allowed=set(_MODEL_DEFAULTS))
        nums = dict(_MODEL_DEFAULTS)
        for name in value:
            high = 100.0 if name in ("alpha", "temperature", "tables_margin") else 1.0
            nums[name] = self.number(value[name], f"model.{name}", low=0.0, high=high, low_open=True)
        return ModelParams(**nums)

    def tokenizer(self, value: Any) -> tuple[str, ...]:
        self.table(value, "tokenizer", allowed={"extra_words"})
        return self.word_list(value.get("extra_words", []), "tokenizer.extra_words")

    def tiers(self, value: Any) -> dict[str, TierTable]:
        if not isinstance(value, Mapping):
            raise self.fail("tiers", f"must be a table, got {type(value).__name__}")
        out: dict[str, TierTable] = {}
        for name, body in value.items():
            key = f"tiers.{name}"
            if name not in TIERS:
                raise self.fail(key, f"unknown tier (known: {', '.join(TIERS)})")
            if name not in SCORED_TIERS:
                raise self.fail(key, "the general tier is what remains and takes no words")
            self.table(
                body, key, allowed={"threshold", "words", "negative", "chars"}, required={"threshold", "words"}
            )
            threshold = self.number(body["threshold"], f"{key}.threshold", low=0.0, high=100.0, low_open=True)
            words = self.weighted(body["words"], f"{key}.words", required=True)
            negative = self.weighted(body.get("negative", {}), f"{key}.negative", required=False)
            for word in negative:
                if word in words:
                    raise self.fail(f"{key}.negative.{word}", "word both counts for and against the tier")
            chars = self.weighted(body.get("chars", {}), f"{key}.chars", required=False)
            for char in chars:
                if len(char) != 1:
                    raise self.fail(f"{key}.chars.{char}", "must be a single character")
            out[name] = TierTable(tier=name, threshold=threshold, words=words, negative=negative, chars=chars)
        for name in SCORED_TIERS:
            if name not in out:
                raise self.fail(f"tiers.{name}", "missing")
        return out

    def types(self, value: Any) -> dict[str, TypeTable]:
        if not isinstance(value, Mapping):
            raise self.fail("types", f"must be a table, got {type(value).__name__}")
        out: dict[str, TypeTable] = {}
        for name, body in value.items():
            key = f"types.{name}"
            if name not in UNIT_TYPES:
                raise self.fail(key, f"unknown unit type (known: {', '.join(UNIT_TYPES)})")
            self.table(body, key, allowed={"words", "negative", "examples", "addressed"}, required={"words"})
            words = self.weighted(body["words"], f"{key}.words", required=True)
            negative = self.weighted(body.get("negative", {}), f"{key}.negative", required=False)
            for word in negative:
                if word in words:
                    raise self.fail(f"{key}.negative.{word}", "word both counts for and against the type")
            examples = body.get("examples", [])
            if not isinstance(examples, list):
                raise self.fail(f"{key}.examples", "must be a list of report texts")
            texts: list[str] = []
            for i, text in enumerate(examples):
                if not isinstance(text, str) or not text.strip():
                    raise self.fail(f"{key}.examples[{i}]", "example must be a non-empty string")
                texts.append(text.strip())
            addressed = self.word_list(body.get("addressed", []), f"{key}.addressed")
            for word in addressed:
                if word not in words:
                    raise self.fail(f"{key}.addressed.{word}", "must also be one of the type's words")
            out[name] = TypeTable(unit_type=name, words=words, negative=negative, examples=tuple(texts),
                                  addressed=frozenset(addressed))
        for name in UNIT_TYPES:
            if name not in out:
                raise self.fail(f"types.{name}", "missing: every unit type needs a keyword table")
        # Keep the vocabulary order so ties and listings are stable.
        return {name: out[name] for name in UNIT_TYPES}


def _join(key: str, name: Any) -> str:
    return f"{key}.{name}" if key else str(name)
