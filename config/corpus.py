"""The labelled triage corpus: config/triage_corpus/*.jsonl, what the model learns from.

Each line is one report as a site liaison wrote it, with its label:
``{"text": ..., "unit_type": <a key of UNIT_TYPES or null>, "tier": <a TIERS key>,
"why": <the duty that justifies the label>}``. Nothing is read at import time;
`load_corpus()` validates every line and raises ConfigError(file, line, reason).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from config.settings import PACKAGE_DIR, ConfigError
from config.vocabulary import TIERS, UNIT_TYPES

CORPUS_DIR = "triage_corpus"


@dataclass(frozen=True)
class LabelledReport:
    text: str
    unit_type: str | None  # None: nothing to route, the office decides
    obstruction: bool


@dataclass(frozen=True)
class Corpus:
    reports: tuple[LabelledReport, ...]
    fingerprint: str  # sha256 of the files' names and bytes: a cached model is valid for it


def corpus_files(directory: Path | str | None = None) -> list[Path]:
    base = Path(directory) if directory is not None else PACKAGE_DIR / CORPUS_DIR
    return sorted(base.glob("*.jsonl"))


def load_corpus(directory: Path | str | None = None) -> Corpus:
    """Read every *.jsonl file of `directory` (default: the one beside this module)."""
    files = _read(directory)
    reports: list[LabelledReport] = []
    for path, data in files:
        for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            if line.strip():
                reports.append(_parse_line(line, path, number))
    return Corpus(tuple(reports), _fingerprint(files))


def corpus_fingerprint(directory: Path | str | None = None) -> str:
    """`load_corpus(directory).fingerprint` without parsing a line: enough to know
    whether a cached model is still the corpus' model."""
    return _fingerprint(_read(directory))


def _read(directory: Path | str | None) -> list[tuple[Path, bytes]]:
    return [(path, path.read_bytes()) for path in corpus_files(directory)]


def _fingerprint(files: list[tuple[Path, bytes]]) -> str:
    digest = hashlib.sha256()
    for path, data in files:
        digest.update(path.name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()


def _parse_line(line: str, path: Path, number: int) -> LabelledReport:
    key = f"line {number}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(path, key, f"not JSON: {exc.msg}") from None
    if not isinstance(row, dict):
        raise ConfigError(path, key, "must be a JSON object")
    text, unit_type, tier = row.get("text"), row.get("unit_type"), row.get("tier")
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(path, f"{key}.text", "must be a non-empty string")
    if unit_type is not None and unit_type not in UNIT_TYPES:
        raise ConfigError(path, f"{key}.unit_type", f"unknown unit type {unit_type!r}")
    if tier not in TIERS:
        raise ConfigError(path, f"{key}.tier", f"unknown tier {tier!r} (known: {', '.join(TIERS)})")
    return LabelledReport(text, unit_type, tier == "obstruction")
