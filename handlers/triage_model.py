"""A small model learned from labelled reports, layered on the keyword tables. Pure.

Keyword tables route what their words name; they cannot know an obstruction act or
a duty phrased in words nobody listed ("往油箱里灌沙子", "把测量桩拔了"). The model
reads the same report as character 1-3-grams (digits collapsed, so stake numbers
and dates do not count) and gives two answers, both multinomial naive Bayes:

- the unit type (or "none": nothing to route, the office decides);
- the probability that the report is an obstruction (阻工扰工).

It is trained on the labelled corpus in config/triage_corpus/ (reports written
apart from the tables, labelled from the duty annex of seeds/002 and DOMAIN.md),
in well under a second, and `handlers/triage.py` consults it only where the tables
are unsure; see its rule 7. Scoring: log P(c | text) = log prior(c) + sum over
known n-grams of log(count(c, g) + alpha) - K * log(total(c) + alpha * V), where K
is the number of known n-grams and log(count + alpha) = log(alpha) +
log(1 + count / alpha); the terms without a count are the same per n-gram, so the
model keeps one row of log(1 + count / alpha) per n-gram (and its obstruction log
odds). A report costs one lookup of its n-gram keys (in C when handlers/_speedups
was built, else numpy), one sum of its obstruction column and, only when asked
for the unit type, one sum of its rows.
"""

from __future__ import annotations

import marshal
import re
from dataclasses import dataclass
from functools import cache
from math import exp, log
from typing import TYPE_CHECKING, Iterable, Sequence

from config.corpus import LabelledReport
from config.keywords import normalize
from handlers.speedups import speedups

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

MODEL_VERSION = 1
NONE = "none"  # the class of reports with nothing to route
# The model reads a report's first 120 characters: liaisons lead with the main
# problem, and all but 46 of the 7,080 labelled reports are shorter than that.
READ_LIMIT = 120

_DIGITS = re.compile(r"[0-9]+")
# What is not a CJK character or a letter ends a run: n-grams never cross it.
_BREAK = re.compile(r"[^\u4e00-\u9fd5a-z0]+")


@dataclass(frozen=True)
class UnitView:
    """The model's unit type for one report."""

    unit_type: str | None  # the most probable unit type; None when that is "none"
    probability: float  # of unit_type (or of "none")
    runner_up: str | None


def ngrams(normalized: str) -> set[str]:
    """The report's character 1-, 2- and 3-grams, inside runs of CJK and letters."""
    out: set[str] = set()
    for run in _BREAK.split(_DIGITS.sub("0", normalized)):
        n = len(run)
        if not n:
            continue
        out.update(run)
        out.update([run[i : i + 2] for i in range(n - 1)])
        out.update([run[i : i + 3] for i in range(n - 2)])
    return out


_SHIFT = 21  # bits per character in an n-gram key (every code point is below 2**21)


def gram_key(gram: str) -> int:
    """An n-gram of up to three characters as one integer; code points are never
    0, so grams of different lengths never share a key."""
    key = 0
    for char in gram:
        key = (key << _SHIFT) | ord(char)
    return key


def gram_keys(normalized: str) -> "np.ndarray":
    """The sorted, distinct keys of `ngrams(normalized)`, computed in numpy
    (about 5x faster than building the strings)."""
    import numpy as np

    text = _DIGITS.sub("0", normalized)
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    kept = _kept_table()[codes]
    uni = codes[kept]
    pair = kept[:-1] & kept[1:]
    bi = (codes[:-1] << _SHIFT | codes[1:])[pair]
    triple = pair[:-1] & kept[2:]
    tri = (codes[:-2] << (2 * _SHIFT) | codes[1:-1] << _SHIFT | codes[2:])[triple]
    return np.unique(np.concatenate((uni, bi, tri)))


@cache
def _kept_table() -> "np.ndarray":
    """Code point -> whether n-grams may contain it (what _BREAK does not split on)."""
    import numpy as np

    table = np.zeros(0x110000, dtype=bool)
    table[0x4E00 : 0x9FD5 + 1] = True
    table[ord("a") : ord("z") + 1] = True
    table[ord("0")] = True
    return table


class CorpusModel:
    """Naive Bayes over n-grams, for the unit type and for obstruction.

    `weights[i]` holds n-gram i's log(1 + count / alpha) per class, then its
    obstruction log odds, log(count_yes + alpha) - log(count_no + alpha); `base`
    and `per_known` are the log priors (and prior log odds) and the per-n-gram
    normalisers in the same layout."""

    def __init__(
        self,
        classes: Sequence[str],
        grams: Sequence[str],
        weights: "np.ndarray",
        base: Sequence[float],
        per_known: Sequence[float],
        fingerprint: str = "",
    ):
        import numpy as np

        self.classes = tuple(classes)
        self.fingerprint = fingerprint
        self._grams = tuple(grams)  # sorted by gram_key
        self._keys = np.fromiter(map(gram_key, self._grams), dtype=np.int64, count=len(self._grams))
        if len(self._keys) > 1 and not (self._keys[1:] > self._keys[:-1]).all():
            raise ValueError("triage model n-grams are not in key order")
        self._base = np.asarray(base, dtype=np.float64)
        self._per_known = np.asarray(per_known, dtype=np.float64)
        if weights.shape != (len(self._grams), len(self.classes) + 1) or self._base.shape != (len(self.classes) + 1,):
            raise ValueError("triage model arrays do not fit its classes and n-grams")
        # Kept as two arrays for reading: the obstruction column is summed for
        # every report, the class columns only when the unit type is asked for.
        self._odds = np.ascontiguousarray(weights[:, -1])
        self._odds_base, self._odds_per_known = float(self._base[-1]), float(self._per_known[-1])
        self._class_weights = np.ascontiguousarray(weights[:, :-1])
        self._class_base, self._class_per_known = self._base[:-1].copy(), self._per_known[:-1].copy()
        native = speedups()
        self._index = native.GramIndex(self._keys) if native is not None else None

    def __len__(self) -> int:
        return len(self._grams)

    def __repr__(self) -> str:
        return f"<CorpusModel {len(self.classes)} classes, {len(self._grams)} n-grams>"

    def read(self, normalized: str, pure_python: bool = False) -> "Reading":
        """What the model makes of the first READ_LIMIT characters of a report."""
        return Reading(self, self.rows(normalized[:READ_LIMIT], pure_python))

    def rows(self, normalized: str, pure_python: bool = False) -> "np.ndarray":
        """The rows of the report's distinct known n-grams, in key order."""
        import numpy as np

        if self._index is not None and not pure_python:
            return np.frombuffer(self._index.rows(normalized), dtype=np.int64)
        keys = gram_keys(normalized)
        at = np.searchsorted(self._keys, keys)
        at[at == len(self._keys)] = 0
        return at[self._keys[at] == keys] if len(self._keys) else at[:0]

    # -- storage -----------------------------------------------------------
    def to_bytes(self) -> bytes:
        import numpy as np

        return marshal.dumps(
            (
                MODEL_VERSION,
                self.fingerprint,
                self.classes,
                self._grams,
                np.column_stack((self._class_weights, self._odds)).astype("<f8").tobytes(),
                tuple(self._base.tolist()),
                tuple(self._per_known.tolist()),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> "CorpusModel":
        """Raises ValueError when `data` is not a model of this version."""
        import numpy as np

        try:
            version, fingerprint, classes, grams, weights, base, per_known = marshal.loads(data)
        except (EOFError, TypeError, ValueError) as exc:
            raise ValueError(f"not a triage model: {exc}") from exc
        if version != MODEL_VERSION:
            raise ValueError(f"triage model version {version}, expected {MODEL_VERSION}")
        matrix = np.frombuffer(weights, dtype="<f8")
        if matrix.size != len(grams) * (len(classes) + 1):
            raise ValueError("triage model arrays do not fit its classes and n-grams")
        return cls(classes, grams, matrix.reshape(len(grams), len(classes) + 1), base, per_known, fingerprint)


class Reading:
    """What the model read in one report: its known n-grams and the summed
    log-scores. Probabilities are taken at `temperature` (1: naive Bayes as it
    is; higher: less sure)."""

    __slots__ = ("_model", "_rows", "_log_odds", "_scores", "_units")

    def __init__(self, model: CorpusModel, rows: "np.ndarray"):
        self._model = model
        self._rows = rows
        self._log_odds = model._odds_base + len(rows) * model._odds_per_known + float(model._odds.take(rows).sum())
        self._scores: "np.ndarray | None" = None  # per class, summed when first asked for
        self._units: dict[float, UnitView] = {}

    def obstruction(self, temperature: float = 1.0) -> float:
        """The probability that the report is an obstruction."""
        return _logistic(self._log_odds / temperature)

    def unit(self, temperature: float = 1.0) -> UnitView:
        view = self._units.get(temperature)
        if view is None:
            view = self._units[temperature] = self._unit(temperature)
        return view

    def _unit(self, temperature: float) -> UnitView:
        import numpy as np

        scores = self._scores
        if scores is None:
            model, rows = self._model, self._rows
            # A sum of rows as a product with ones: BLAS, ~4x numpy's sum over axis 0.
            scores = np.ones(len(rows)) @ model._class_weights.take(rows, axis=0)
            scores += model._class_base + len(rows) * model._class_per_known
            self._scores = scores
        order = np.argsort(-scores, kind="stable")  # ties: the first class
        top, runner = int(order[0]), int(order[1])
        classes = self._model.classes
        return UnitView(
            unit_type=None if classes[top] == NONE else classes[top],
            probability=1.0 / float(np.exp((scores - scores[top]) / temperature).sum()),
            runner_up=None if classes[runner] == NONE else classes[runner],
        )

    def evidence(self, unit_type: str, against: str | None, limit: int = 3) -> tuple[str, ...]:
        """The n-grams (two characters or more, none inside another) that favour
        `unit_type` over `against` (default: "none") most."""
        model = self._model
        classes = model.classes
        top = classes.index(unit_type)
        against = against if against is not None else NONE
        weights = model._class_weights[self._rows]
        gains = weights[:, top] - (weights[:, classes.index(against)] if against in classes else 0.0)
        best = gains.argsort()[::-1][: 8 * limit]  # enough, even after dropping single characters
        weighed = [
            (gain, model._grams[row])
            for row, gain in zip(self._rows[best].tolist(), gains[best].tolist())
            if gain > 0 and len(model._grams[row]) > 1
        ]
        chosen: list[str] = []
        for _, gram in weighed:
            if not any(gram in other or other in gram for other in chosen):
                chosen.append(gram)
                if len(chosen) == limit:
                    break
        return tuple(chosen)


def train(reports: Iterable[LabelledReport], alpha: float, fingerprint: str = "") -> CorpusModel:
    """Count n-grams per class (each report counts an n-gram once)."""
    import numpy as np

    classes: list[str] = []
    index: dict[str, int] = {}
    docs: list[int] = []
    counts: dict[str, dict[int, int]] = {}
    obstruction_counts: dict[str, list[int]] = {}
    obstruction_docs = [0, 0]
    for report in reports:
        name = report.unit_type or NONE
        if name not in index:
            index[name] = len(classes)
            classes.append(name)
            docs.append(0)
        c = index[name]
        o = 1 if report.obstruction else 0
        docs[c] += 1
        obstruction_docs[o] += 1
        for gram in ngrams(normalize(report.text)):
            per_class = counts.setdefault(gram, {})
            per_class[c] = per_class.get(c, 0) + 1
            obstruction_counts.setdefault(gram, [0, 0])[o] += 1
    if len(classes) < 2 or not all(obstruction_docs):
        raise ValueError("a triage model needs reports of two unit types or more, obstruction and not")
    grams = sorted(counts, key=gram_key)
    n_classes = len(classes)
    weights = np.zeros((len(grams), n_classes + 1))
    totals = [0] * n_classes
    for row, gram in enumerate(grams):
        for c, n in counts[gram].items():
            weights[row, c] = log(1.0 + n / alpha)
            totals[c] += n
        no, yes = obstruction_counts[gram]
        weights[row, n_classes] = log(yes + alpha) - log(no + alpha)
    vocabulary = len(grams)
    ob_totals = [sum(pair[o] for pair in obstruction_counts.values()) for o in (0, 1)]
    n_docs = sum(docs)
    base = [log(d / n_docs) for d in docs] + [log(obstruction_docs[1] / obstruction_docs[0])]
    per_known = [log(alpha) - log(t + alpha * vocabulary) for t in totals]
    per_known.append(log(ob_totals[0] + alpha * vocabulary) - log(ob_totals[1] + alpha * vocabulary))
    return CorpusModel(classes, grams, weights, base, per_known, fingerprint)


def _logistic(log_odds: float) -> float:
    if log_odds >= 0:
        return 1.0 / (1.0 + exp(-log_odds))
    e = exp(log_odds)
    return e / (1.0 + e)
