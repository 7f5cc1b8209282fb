"""Learning from the office's corrections (issue 3, part 4). Pure.

When the office reassigns a ticket from the proposed unit type to another, that is
a correction ``(text, proposed_type, correct_type)``. `learn()` turns corrections
into an `Overlay`: per-token weight adjustments per unit type, layered on the
keyword tables (keywords.toml is never edited) and stored as JSON.

- Training is a perceptron over the report's tokens: whenever the classifier with
  the current overlay routes a training text wrongly, every informative token of
  it gains ``rate`` for the right type and loses ``rate`` for the wrong one
  (weights are clipped to +-``clip``). Informative tokens have two or more
  characters, are not numbers, and occur in at most ``max_df`` of the anchor
  texts (generic words such as 项目 or 一直 carry no routing signal).
- The tables' own cases (`KeywordTables.examples()` plus any labelled evaluation
  set) that the tables route right are anchors: they are trained on too, so an
  update that would break one is undone in the same pass. Cases the tables get
  wrong are not learned from: only the office's corrections teach.
- Corrections are split deterministically (by a hash of the text) into training
  and held-out; `LearnReport` gives the accuracy on the held-out ones before and
  after, and the guard's verdict: an overlay that makes ANY of the tables' own
  cases worse is rejected (`LearnReport.overlay` is then None).

An obstruction report always goes to the police unit type (see handlers/triage.py),
so a correction of such a report cannot be learned by token weights; it is
counted in `LearnReport.unlearnable`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

from config.vocabulary import UNIT_TYPES
from handlers.triage import Classifier

OVERLAY_VERSION = 1


class OverlayError(ValueError):
    """An overlay document that cannot be used."""


@dataclass(frozen=True)
class Correction:
    text: str
    proposed_type: str | None  # None when the classifier sent it to the office
    correct_type: str


CorrectionLike = Correction | tuple[str, str | None, str]


def as_corrections(items: Iterable[CorrectionLike]) -> list[Correction]:
    """Accept `Correction`s or plain (text, proposed_type, correct_type) tuples."""
    out = []
    for item in items:
        if not isinstance(item, Correction):
            text, proposed, correct = item
            item = Correction(text, proposed, correct)
        if item.correct_type not in UNIT_TYPES:
            raise ValueError(f"unknown unit type {item.correct_type!r} in a correction")
        out.append(item)
    return out


@dataclass(frozen=True)
class Overlay:
    """token -> unit type -> weight adjustment."""

    weights: Mapping[str, Mapping[str, float]]

    def __len__(self) -> int:
        return len(self.weights)

    def to_json(self) -> str:
        body = {
            "version": OVERLAY_VERSION,
            "weights": {
                token: {t: round(d, 4) for t, d in sorted(deltas.items())}
                for token, deltas in sorted(self.weights.items())
            },
        }
        return json.dumps(body, ensure_ascii=False, sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Overlay":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OverlayError(f"not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != OVERLAY_VERSION:
            raise OverlayError(f"expected an object with version {OVERLAY_VERSION}")
        weights = data.get("weights")
        if not isinstance(weights, dict):
            raise OverlayError("weights must be an object")
        out: dict[str, Mapping[str, float]] = {}
        for token, deltas in weights.items():
            if not isinstance(token, str) or not token.strip():
                raise OverlayError("empty token")
            if not isinstance(deltas, dict):
                raise OverlayError(f"{token}: must map unit types to numbers")
            clean: dict[str, float] = {}
            for unit_type, delta in deltas.items():
                if unit_type not in UNIT_TYPES:
                    raise OverlayError(f"{token}: unknown unit type {unit_type!r}")
                if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not math.isfinite(delta):
                    raise OverlayError(f"{token}.{unit_type}: not a finite number")
                clean[unit_type] = float(delta)
            out[token] = MappingProxyType(clean)
        return cls(MappingProxyType(out))


@dataclass(frozen=True)
class Score:
    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 1.0


@dataclass(frozen=True)
class GuardResult:
    ok: bool
    checked: int
    worse: tuple[tuple[str, str | None, str | None, str | None], ...]  # (text, expected, before, after)


@dataclass(frozen=True)
class LearnReport:
    overlay: Overlay | None  # None when rejected by the guard
    candidate: Overlay  # what training produced, accepted or not
    train_size: int
    held_out_size: int
    before: Score  # on held-out corrections, tables only
    after: Score  # on held-out corrections, tables + candidate overlay
    guard: GuardResult
    unlearnable: int  # obstruction reports corrected to a non-police type

    @property
    def accepted(self) -> bool:
        return self.overlay is not None

    def summary(self) -> str:
        """Chinese one-paragraph summary for `kpbot triage learn`."""
        lines = [
            f"纠正记录：训练 {self.train_size} 条，留出验证 {self.held_out_size} 条。",
            f"留出验证准确率：学习前 {self.before.accuracy:.1%}（{self.before.correct}/{self.before.total}），"
            f"学习后 {self.after.accuracy:.1%}（{self.after.correct}/{self.after.total}）。",
        ]
        if self.accepted:
            lines.append(f"已采用：{len(self.candidate)} 个词的权重调整，关键词表自身用例 {self.guard.checked} 条无一变差。")
        else:
            lines.append(f"已拒绝：会使关键词表自身用例变差 {len(self.guard.worse)} 条（共 {self.guard.checked} 条）。")
            for text, expected, before, after in self.guard.worse[:5]:
                lines.append(f"  {text}：应为 {expected}，原为 {before}，学习后为 {after}")
        if self.unlearnable:
            lines.append(f"另有 {self.unlearnable} 条阻工类纠正无法通过词权重学习，需调整关键词表。")
        return "\n".join(lines)


# -- public functions ----------------------------------------------------------


def split_corrections(
    corrections: Sequence[CorrectionLike], held_out_fraction: float = 0.25
) -> tuple[list[Correction], list[Correction]]:
    """Deterministic split by a hash of the text: the same correction always lands
    on the same side, whatever the order or the other corrections."""
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError("held_out_fraction must be in [0, 1)")
    train: list[Correction] = []
    held: list[Correction] = []
    cut = int(held_out_fraction * 10_000)
    for c in as_corrections(corrections):
        bucket = int(hashlib.sha1(c.text.encode("utf-8")).hexdigest()[:8], 16) % 10_000
        (held if bucket < cut else train).append(c)
    return train, held


def evaluate(classifier: Classifier, cases: Iterable[tuple[str, str | None]]) -> Score:
    """Top-1 accuracy; a case labelled None is right when the report goes to the office."""
    correct = total = 0
    for text, expected in cases:
        total += 1
        correct += classifier.classify(text).unit_type == expected
    return Score(correct, total)


def check_overlay(
    classifier: Classifier, overlay: Overlay | None, cases: Iterable[tuple[str, str | None]]
) -> GuardResult:
    """The guard: every case the tables route right must stay right with the overlay."""
    base = classifier.with_overlay(None)
    layered = classifier.with_overlay(overlay)
    worse = []
    checked = 0
    for text, expected in cases:
        checked += 1
        before = base.classify(text).unit_type
        if before != expected:
            continue
        after = layered.classify(text).unit_type
        if after != expected:
            worse.append((text, expected, before, after))
    return GuardResult(ok=not worse, checked=checked, worse=tuple(worse))


def learn_overlay(
    classifier: Classifier,
    corrections: Sequence[CorrectionLike],
    anchors: Sequence[tuple[str, str | None]] = (),
    *,
    epochs: int = 10,
    rate: float = 1.0,
    clip: float = 4.0,
    max_df: float = 0.05,
) -> Overlay:
    """Perceptron training of token weights (see the module docstring)."""
    corrections = as_corrections(corrections)
    base = classifier.with_overlay(None)
    obstruction_unit = classifier.tables.params.obstruction_unit
    protected = [(text, label) for text, label in anchors if label is not None and base.classify(text).unit_type == label]
    # Sorted: the result depends on the corrections, not on the order they came in.
    items: list[tuple[str, str | None]] = sorted({(c.text, c.correct_type) for c in corrections}) + protected
    token_sets = {text: _informative(classifier, text) for text, _ in items}
    df: dict[str, int] = {}
    background = {text for text, _ in anchors}
    for text in background:
        for tok in token_sets.get(text) or _informative(classifier, text):
            df[tok] = df.get(tok, 0) + 1
    limit = max(2, int(max_df * len(background))) if background else None
    weights: dict[str, dict[str, float]] = {}
    for _ in range(epochs):
        current = classifier.with_overlay(_freeze(weights))
        changed = False
        for text, label in items:
            triage = current.classify(text)
            if triage.unit_type == label:
                continue
            if triage.tier == "obstruction" and label != obstruction_unit:
                continue  # the obstruction rule decides; token weights cannot
            tokens = [t for t in token_sets[text] if limit is None or df.get(t, 0) <= limit]
            if not tokens:
                continue
            for tok in tokens:
                deltas = weights.setdefault(tok, {})
                deltas[label] = _clamp(deltas.get(label, 0.0) + rate, clip)
                if triage.unit_type is not None:
                    deltas[triage.unit_type] = _clamp(deltas.get(triage.unit_type, 0.0) - rate, clip)
            changed = True
            current = classifier.with_overlay(_freeze(weights))
        if not changed:
            break
    return _freeze({t: {k: v for k, v in d.items() if v} for t, d in weights.items() if any(d.values())})


def learn(
    classifier: Classifier,
    corrections: Sequence[CorrectionLike],
    cases: Sequence[tuple[str, str | None]] = (),
    *,
    held_out_fraction: float = 0.25,
    **train_options,
) -> LearnReport:
    """Split, train, measure before/after on the held-out corrections, and guard.

    `cases` are the labelled evaluation cases; the tables' own examples are always
    added. The overlay is returned only when no case gets worse."""
    corrections = as_corrections(corrections)
    base = classifier.with_overlay(None)
    own_cases = list(base.tables.examples()) + list(cases)
    train, held = split_corrections(corrections, held_out_fraction)
    candidate = learn_overlay(base, train, own_cases, **train_options)
    layered = base.with_overlay(candidate)
    held_cases = [(c.text, c.correct_type) for c in held]
    guard = check_overlay(base, candidate, own_cases)
    unlearnable = sum(
        1
        for c in corrections
        if c.correct_type != base.tables.params.obstruction_unit and base.classify(c.text).tier == "obstruction"
    )
    return LearnReport(
        overlay=candidate if guard.ok else None,
        candidate=candidate,
        train_size=len(train),
        held_out_size=len(held),
        before=evaluate(base, held_cases),
        after=evaluate(layered, held_cases),
        guard=guard,
        unlearnable=unlearnable,
    )


def load_cases(path: Path | str) -> list[tuple[str, str | None]]:
    """(text, unit_type) pairs from a JSON-lines evaluation file (tests/data/triage_eval.jsonl)."""
    out: list[tuple[str, str | None]] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.append((row["text"], row["unit_type"]))
    return out


# -- helpers -------------------------------------------------------------------


def _informative(classifier: Classifier, text: str) -> list[str]:
    out = []
    for tok in classifier.tokens(text):
        if len(tok) < 2 or tok.isdigit() or not any(ch.isalnum() for ch in tok):
            continue
        out.append(tok)
    return sorted(set(out))


def _clamp(value: float, clip: float) -> float:
    return max(-clip, min(clip, value))


def _freeze(weights: Mapping[str, Mapping[str, float]]) -> Overlay:
    return Overlay(MappingProxyType({t: MappingProxyType(dict(d)) for t, d in weights.items()}))
