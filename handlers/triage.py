"""Triage: route a problem report to a unit type and a tier (issue 3). Pure.

`build_classifier(tables, cache_dir)` is called once at start-up: it creates its own
`jieba.Tokenizer` (jieba's global `jieba.dt` is never touched), points jieba's
prefix-dictionary cache at `cache_dir` so a restart loads it instead of rebuilding
it, and adds every keyword so it stays one token. `Classifier.classify(text)`
then segments the report, scores each unit type with the keyword tables (and an
optional learned overlay, see handlers/triage_learn.py), asks the model learned
from the labelled corpus where the tables are unsure, and returns a `Triage`.

Rules, in order (all thresholds come from keywords.toml ``[classifier]``):

1. Each keyword counts once per report. A whole-token match counts, and so does a
   keyword inside a longer token (公安局 -> 公安); a token with neither may still
   carry a tier character cue (围殴 -> 殴). Words in ``[tokenizer] extra_words``
   match nothing. A keyword's weight is scaled by the clause it appears in:
   liaisons lead with the main problem, each later clause weighs ``clause_decay``
   less (floor ``min_clause_factor``). Per unit type the strongest word counts in
   full and each further word ``extra_word_factor`` of its weight (synonyms of one
   problem should not outvote the first problem); negative words subtract.
2. Tier: obstruction when the obstruction words reach their threshold, else major
   when the major words reach theirs, else general. Obstruction words after a
   negator (无, 没有 ...) do not count, nor the ones listed with them.
3. A report that asks a unit to act (one of its type's ``addressed`` words, the
   unit's own name, in a clause with one of the ``requests`` words: "请县里把补偿
   落实", "需要发改委出面统筹"; or right after one of the ``direct_requests``:
   "要求县里给个说法") goes to that unit type, if the type scores at least
   ``min_score``; several asked: the best scoring. Naming a unit is not asking it
   ("镇里来人劝了也不走", "一伙人要求我们…").
4. Otherwise an obstruction report goes to ``obstruction_unit`` (公安: 阻工扰工
   within 3 days), the unit types of its cause listed as secondary; a report that
   asks another unit to act (3.) still has the police second.
5. Otherwise the best unit type wins, unless it scores below ``min_score``
   (needs_office, reason "no_match") or the runner-up reaches ``ambiguity_ratio`` of
   it (needs_office, reason "ambiguous"). There is never a silent guess.
6. Other unit types scoring at least ``secondary_ratio`` of the best (and at least
   ``min_score``) are secondary: the report names several problems.
7. With a learned model (handlers/triage_model.py, trained on config/triage_corpus;
   thresholds in keywords.toml ``[model]``), where the tables are unsure:
   - a report the tables do not call an obstruction becomes one when the model
     gives it ``add_obstruction_probability`` and would itself send it to the
     police; one the tables call an obstruction stays one unless the model gives it
     less than ``keep_obstruction_probability``;
   - when the tables' best type scores less than ``tables_margin`` times the
     runner-up, the model's type (at ``min_probability``) decides; when the tables
     found no word or two types too close to call, only a model at
     ``no_match_probability`` decides, else the office does. A unit asked to act
     (3.) is never overruled. A decision of the model has confidence at most 0.5
     and its matched words are the n-grams that weighed most, those that are
     words of the tokenizer's dictionary first (a liaison reads 被人、昨晚, not 了半).

Confidence is ``s1 / (s1 + 2) * (0.5 + 0.5 * (s1 - s2) / s1)`` for the best score
s1 and the runner-up s2: near 0 for a weak single word, 0.5 for two strong words
of different types tied, towards 1 for strong evidence for one type only; 0 when
nothing matched.

Segmentation is jieba's own accurate mode without HMM (the HMM only invents
out-of-vocabulary words, which can never be keywords). It runs in C over a
snapshot of this tokenizer's dictionary (handlers/_speedups.c, ~10x jieba) when
that was built, else `_segment_python` runs the same DAG + dynamic programme as
`Tokenizer.cut(text, HMM=False)` in one pass, about twice as fast as jieba;
tests check that both give jieba's tokens.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from math import log
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from config.keywords import KeywordTables, normalize
from handlers.speedups import speedups

if TYPE_CHECKING:  # pragma: no cover
    import jieba

    from handlers.triage_learn import Overlay
    from handlers.triage_model import CorpusModel, Reading, UnitView

CACHE_FILE = "kpbot-jieba.cache"
NO_MATCH = "no_match"
AMBIGUOUS = "ambiguous"

# jieba's block pattern (re_han_default) and what splits the rest (re_skip_default).
_RE_HAN = re.compile("([\u4E00-\u9FD5a-zA-Z0-9+#&\\._%\\-]+)")
_RE_SKIP = re.compile("(\r\n|\\s)")
# Tokens that end a clause. "、" lists items inside one clause, so it is not here.
_CLAUSE_ENDS = frozenset("，,。.；;！!？?：:\n\r\t …~～()（）【】[]")
# Tokens that keep a negation going over a list: "无阻工、扰工", "没有发生阻工".
_NEGATION_PASS = frozenset(["、", "和", "或", "及", "等", "发生", "出现", "任何", "过", "的", "情况", "去", "来", "也"])
_MEMO_LIMIT = 200_000
_FREQ_BOOST = 5  # keywords get 5x the frequency jieba suggests, so context rarely splits them


@dataclass(frozen=True)
class UnitRef:
    """A real handling unit, as the organisation knows it."""

    key: str
    name: str
    unit_type: str
    office_key: str


@dataclass(frozen=True)
class Triage:
    text: str
    unit_type: str | None  # None when needs_office
    candidates: tuple[tuple[str, float], ...]  # ranked, scores rounded to 2 places
    matched: Mapping[str, tuple[str, ...]]  # unit type -> words that counted for it
    confidence: float  # 0..1
    tier: str  # 'obstruction' | 'general' | 'major'
    tier_words: tuple[str, ...]
    needs_office: bool
    reason: str | None  # 'no_match' | 'ambiguous' | None
    secondary: tuple[str, ...] = ()  # other unit types the report names

    def matched_words(self) -> tuple[str, ...]:
        """Words behind the decision: the chosen type's words then the tier words;
        every matched word when the office has to decide."""
        if self.unit_type is not None:
            words = list(self.matched.get(self.unit_type, ()))
        else:
            words = [w for ws in self.matched.values() for w in ws]
        for word in self.tier_words:
            if word not in words:
                words.append(word)
        return tuple(dict.fromkeys(words))


@dataclass(frozen=True, slots=True)
class _Hit:
    """What one keyword contributes."""

    word: str
    types: tuple[tuple[int, float], ...]  # (type index, +weight)
    negative: tuple[tuple[int, float], ...]  # (type index, weight to subtract)
    tiers: tuple[tuple[str, float], ...]  # (tier, weight); negative weights count against it
    obstruction: bool
    addressed: tuple[int, ...] = ()  # the unit types this word names as the one to act


@dataclass(frozen=True, slots=True)
class _Token:
    """What one token does in a report (memoised per token)."""

    hits: tuple[_Hit, ...]
    ends_clause: bool = False
    negator: bool = False
    request: bool = False  # one of the `requests` words: its clause asks
    direct: bool = False  # one of the `direct_requests`: asks the unit named next
    keeps_negation: bool = False  # a negation goes on over it (无阻工、扰工)


_PLAIN = _Token(hits=())  # a token that matters only by ending a negation


@dataclass(repr=False)
class Classifier:
    """Keyword tables + their own tokenizer (+ an optional learned overlay).

    Create it with `build_classifier`. `classify` is pure apart from two memos
    (token -> what it does, fragment -> log probability) that only speed it up;
    the tokenizer's dictionary must not change once the classifier exists.
    `pure_python` keeps the C segmentation out (tests and the bench compare)."""

    tables: KeywordTables
    tokenizer: "jieba.Tokenizer"
    overlay: "Overlay | None" = None
    model: "CorpusModel | None" = None
    pure_python: bool = False
    _type_names: tuple[str, ...] = field(init=False, repr=False)
    _hits: dict[str, _Hit] = field(init=False, repr=False)
    _addressed_by_word: dict[str, tuple[int, ...]] = field(init=False, repr=False)
    _requests: frozenset[str] = field(init=False, repr=False)
    _direct_requests: frozenset[str] = field(init=False, repr=False)
    _memo: dict[str, _Token] = field(init=False, repr=False)
    _overlay: dict[str, tuple[tuple[int, float], ...]] = field(init=False, repr=False)
    _negators: frozenset[str] = field(init=False, repr=False)
    _blocked: frozenset[str] = field(init=False, repr=False)
    _char_cues: dict[str, tuple[tuple[str, float], ...]] = field(init=False, repr=False)
    _logp: dict = field(init=False, repr=False)
    _logtotal: float | None = field(init=False, repr=False)
    _lexicon: object = field(init=False, repr=False)  # handlers._speedups.Lexicon, or None
    _fold: object = field(init=False, repr=False)  # handlers._speedups.fold_full_width, or None
    _mark: object = field(init=False, repr=False)  # handlers._speedups.mark_tokens, or _mark_tokens
    _clause_factors: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._type_names = tuple(self.tables.types)
        addressed: dict[str, list[int]] = {}
        for idx, table in enumerate(self.tables.types.values()):
            for word in table.addressed:
                addressed.setdefault(word, []).append(idx)
        self._addressed_by_word = {word: tuple(types) for word, types in addressed.items()}
        self._hits = _compile_hits(self.tables, self._type_names, self._addressed_by_word)
        params = self.tables.params
        self._clause_factors = _clause_factors(params.clause_decay, params.min_clause_factor)
        self._requests = frozenset(self.tables.params.requests)
        self._direct_requests = frozenset(self.tables.params.direct_requests)
        self._memo = {}
        # The tokenizer's dictionary must not change after this point (build_classifier
        # adds the keywords before creating the Classifier).
        self._logp = {}
        self._logtotal = None
        self._negators = frozenset(self.tables.params.negators)
        self._blocked = frozenset(self.tables.extra_words)
        cues: dict[str, list[tuple[str, float]]] = {}
        for tier, table in self.tables.tiers.items():
            for char, weight in table.chars.items():
                cues.setdefault(char, []).append((tier, weight))
        self._char_cues = {c: tuple(v) for c, v in cues.items()}
        self._overlay = _compile_overlay(self.overlay, self._type_names)
        native = None if self.pure_python else speedups()
        self._lexicon = native.Lexicon(self.tokenizer.FREQ, self.tokenizer.total) if native else None
        self._fold = native.fold_full_width if native else None
        self._mark = native.mark_tokens if native else _mark_tokens

    def __repr__(self) -> str:
        words = sum(len(t.words) for t in self.tables.types.values())
        overlay = len(self.overlay) if self.overlay is not None else 0
        return f"<Classifier {len(self._type_names)} unit types, {words} words, overlay {overlay} tokens>"

    # -- public ------------------------------------------------------------
    def with_overlay(self, overlay: "Overlay | None") -> "Classifier":
        """The same tables and tokenizer with another overlay. Cheap: shares the
        tokenizer, the compiled tables and the memos (they depend on neither)."""
        other = copy.copy(self)
        other.overlay = overlay
        other._overlay = _compile_overlay(overlay, self._type_names)
        return other

    def with_model(self, model: "CorpusModel | None") -> "Classifier":
        """The same tables, tokenizer and overlay with another learned model (None:
        the tables decide alone)."""
        other = copy.copy(self)
        other.model = model
        return other

    def tokens(self, text: str) -> list[str]:
        """The report's tokens as the classifier sees them (normalised)."""
        return self._segment(normalize(text, self._fold))

    def classify(self, text: str) -> Triage:
        params = self.tables.params
        names = self._type_names
        normalized = normalize(text, self._fold)
        tokens = self._segment(normalized)
        n = len(names)
        scores = [0.0] * n
        contrib: list[list[float]] = [[] for _ in range(n)]
        first = [1 << 30] * n
        matched: dict[int, list[str]] = {}
        tier_score = {"obstruction": 0.0, "major": 0.0}
        tier_words: dict[str, list[str]] = {"obstruction": [], "major": []}
        seen: set[str] = set()
        seen_overlay: set[str] = set()
        overlay = self._overlay
        factors = self._clause_factors
        last_clause = len(factors) - 1
        factor = 1.0
        clause = 0
        negating = False
        asked: set[int] = set()
        addressed = self._addressed_by_word
        named: dict[int, set[int]] = {}  # unit type -> clauses that name it as the one to act
        last = -2
        for pos, tok, entry in self._marked(tokens):
            if negating and pos != last + 1:
                negating = False  # a plain token came between
            last = pos
            if entry.ends_clause:
                clause += 1
                factor = factors[clause if clause < last_clause else last_clause]
                negating = False
                continue
            if entry.negator:
                negating = True
                continue
            if entry.request:
                asked.add(clause)
            elif entry.direct and pos + 1 < len(tokens) and tokens[pos + 1] in addressed:
                asked.add(clause)
            if negating and not entry.keeps_negation:
                negating = False
            for hit in entry.hits:
                word = hit.word
                for idx in hit.addressed:  # every clause naming it, not only the first
                    named.setdefault(idx, set()).add(clause)
                if word in seen:
                    continue
                if hit.obstruction and negating:
                    continue
                seen.add(word)
                for idx, weight in hit.types:
                    contrib[idx].append(weight * factor)
                    if pos < first[idx]:
                        first[idx] = pos
                    matched.setdefault(idx, []).append(word)
                for idx, weight in hit.negative:
                    scores[idx] -= weight * factor
                for tier, weight in hit.tiers:
                    tier_score[tier] += weight
                    if weight > 0:
                        tier_words[tier].append(word)
            if overlay and tok in overlay and tok not in seen_overlay:
                seen_overlay.add(tok)
                for idx, delta in overlay[tok]:
                    scores[idx] += delta * factor
                    if delta > 0:
                        if pos < first[idx]:
                            first[idx] = pos
                        matched.setdefault(idx, []).append(tok)
        extra = params.extra_word_factor
        for idx in range(n):
            c = contrib[idx]
            if c:
                c.sort(reverse=True)
                scores[idx] += c[0] + extra * sum(c[1:])
        called = {idx for idx, clauses in named.items() if not clauses.isdisjoint(asked)}
        reading = self.model.read(normalized, self.pure_python) if self.model is not None else None
        return self._decide(text, scores, first, matched, tier_score, tier_words, called, reading)

    # -- internals ---------------------------------------------------------
    def _decide(
        self,
        text: str,
        scores: list[float],
        first: list[int],
        matched: dict[int, list[str]],
        tier_score: dict[str, float],
        tier_words: dict[str, list[str]],
        called: set[int],
        reading: "Reading | None" = None,
    ) -> Triage:
        params = self.tables.params
        names = self._type_names
        ranked = sorted((i for i in range(len(names)) if scores[i] > 1e-9), key=lambda i: (-scores[i], first[i], i))
        temperature = self.tables.model.temperature
        tier = self._tier(tier_score, reading)
        if tier == "obstruction" and tier_score["obstruction"] < self.tables.tiers["obstruction"].threshold:
            # The model's call (rule 7): its n-grams for the police over "none".
            words_of_tier = self._evidence(reading, params.obstruction_unit, None)
        else:
            words_of_tier = tuple(dict.fromkeys(tier_words.get(tier, ())))

        main: int | None = None
        reason: str | None = None
        asked_to_act = [i for i in called if scores[i] >= params.min_score]
        if tier == "obstruction" and params.obstruction_unit is not None:
            # The police unit leads (its score is at least the obstruction
            # evidence), unless the report asks another unit to act.
            police = names.index(params.obstruction_unit)
            scores[police] = max(scores[police], tier_score["obstruction"])
            main = max((i for i in asked_to_act if i != police), key=lambda i: scores[i], default=police)
            ranked = [main] + ([police] if police != main else []) + [i for i in ranked if i not in (main, police)]
        elif asked_to_act:
            main = max(asked_to_act, key=lambda i: scores[i])
            ranked = [main] + [i for i in ranked if i != main]
        elif not ranked or scores[ranked[0]] < params.min_score:
            reason = NO_MATCH
        elif len(ranked) > 1 and scores[ranked[1]] >= params.ambiguity_ratio * scores[ranked[0]]:
            reason = AMBIGUOUS
        else:
            main = ranked[0]

        view = None
        if reading is not None and tier != "obstruction" and not asked_to_act and self._tables_unsure(scores, ranked):
            view = reading.unit(temperature)
            chosen = self._model_choice(view, reason)
            if chosen is None or (chosen == main and reason is None):
                view = None
            else:
                main, reason = chosen, None
                ranked = [main] + [i for i in ranked if i != main]
                if not matched.get(main):  # the tables' own words for it say more than n-grams
                    matched[main] = list(self._evidence(reading, view.unit_type, view.runner_up))

        if reason == NO_MATCH:
            confidence = 0.0
        elif view is not None:
            confidence = round(0.5 * view.probability, 3)  # the tables could not decide it alone
        else:
            s1 = scores[ranked[0]]
            s2 = max((scores[i] for i in ranked[1:]), default=0.0)
            margin = max(0.0, (s1 - s2) / s1) if s1 > 0 else 0.0
            confidence = round(s1 / (s1 + 2.0) * (0.5 + 0.5 * margin), 3)

        secondary: tuple[str, ...] = ()
        if main is not None and len(ranked) > 1:
            if tier == "obstruction":
                reference = max(scores[i] for i in ranked[1:])
            elif view is not None:  # the model's type may have no table score
                reference = max(scores[i] for i in ranked)
            else:
                reference = scores[main]
            secondary = tuple(
                names[i]
                for i in ranked[1:]
                if scores[i] >= params.min_score and scores[i] >= params.secondary_ratio * reference
            )
        return Triage(
            text=text,
            unit_type=names[main] if main is not None else None,
            candidates=tuple((names[i], round(scores[i], 2)) for i in ranked),
            matched=MappingProxyType({names[i]: tuple(ws) for i, ws in matched.items()}),
            confidence=confidence,
            tier=tier,
            tier_words=words_of_tier,
            needs_office=main is None,
            reason=reason,
            secondary=secondary,
        )

    def _tier(self, tier_score: dict[str, float], reading: "Reading | None") -> str:
        """Rule 2, then the model's word on obstruction (rule 7)."""
        tiers = self.tables.tiers
        obstruction = tier_score["obstruction"] >= tiers["obstruction"].threshold
        if reading is not None:
            limits = self.tables.model
            probability = reading.obstruction(limits.temperature)
            if obstruction:
                obstruction = probability >= limits.keep_obstruction_probability
            else:  # only when the model, too, would send the report to the police
                police = self.tables.params.obstruction_unit
                obstruction = (
                    police is not None
                    and probability >= limits.add_obstruction_probability
                    and reading.unit(limits.temperature).unit_type == police
                )
        if obstruction:
            return "obstruction"
        return "major" if tier_score["major"] >= tiers["major"].threshold else "general"

    def _tables_unsure(self, scores: list[float], ranked: list[int]) -> bool:
        """No word, too close to call, or a best type short of tables_margin times
        the runner-up."""
        if not ranked or scores[ranked[0]] < self.tables.params.min_score:
            return True
        runner_up = scores[ranked[1]] if len(ranked) > 1 else 0.0
        return scores[ranked[0]] < self.tables.model.tables_margin * runner_up

    def _model_choice(self, view: "UnitView", reason: str | None) -> int | None:
        """Rule 7: the unit type the model picks where the tables are unsure, or None."""
        limits = self.tables.model
        # The tables could not decide (no word, or two types too close to call): only a
        # sure model decides instead; else the office does, as without the model.
        needed = limits.min_probability if reason is None else limits.no_match_probability
        if view.unit_type is None or view.probability < needed:
            return None
        return self._type_names.index(view.unit_type)

    def _evidence(self, reading: "Reading", unit_type: str, against: str | None) -> tuple[str, ...]:
        """The model's strongest n-grams for `unit_type`, as words a person reads:
        the dictionary's words among them, else the n-grams as they are."""
        grams = reading.evidence(unit_type, against, limit=12)
        freq = self.tokenizer.FREQ
        words = [gram for gram in grams if freq.get(gram)]
        return tuple((words or grams)[:3])

    def _marked(self, tokens: list[str]) -> list[tuple[int, str, _Token]]:
        """The tokens that do more than end a negation (and the overlay's), with
        their positions: most tokens of a long report do nothing."""
        memo, keep = self._memo, self._overlay or None
        marked = self._mark(tokens, memo, _PLAIN, keep)
        if marked is None:  # a token seen for the first time
            missing = set(tokens).difference(memo)
            if len(memo) + len(missing) > _MEMO_LIMIT:
                memo.clear()
                missing = set(tokens)
            for tok in missing:
                memo[tok] = self._token(tok)
            marked = self._mark(tokens, memo, _PLAIN, keep)
        return marked

    def _token(self, tok: str) -> _Token:
        """What a token does: ends a clause, negates, asks, or carries keywords."""
        if tok in _CLAUSE_ENDS or tok.isspace():
            return _Token(hits=(), ends_clause=True)
        if tok in self._negators:
            return _Token(hits=(), negator=True)
        hits = self._lookup(tok)
        request = tok in self._requests
        direct = not request and tok in self._direct_requests
        keeps = tok in _NEGATION_PASS or any(h.obstruction for h in hits)
        if not (hits or request or direct or keeps):
            return _PLAIN
        return _Token(hits=hits, request=request, direct=direct, keeps_negation=keeps)

    def _lookup(self, tok: str) -> tuple[_Hit, ...]:
        """Keywords in one token: the token itself, or else the longest keywords
        inside it, left to right (公安局 -> 公安); failing both, the tier character
        cues in it (围殴 -> 殴). Extra words match nothing."""
        hits = self._hits
        hit = hits.get(tok)
        if tok in self._blocked:
            found: tuple[_Hit, ...] = ()
        elif hit is not None and (hit.types or hit.negative or len(tok) < 3):
            found = (hit,)
        elif len(tok) < 3:
            found = ()
        else:
            # A whole-token tier word (省交通厅) still names a unit type inside it.
            out: list[_Hit] = [hit] if hit is not None else []
            i, n = 0, len(tok)
            while i < n - 1:
                for j in range(n, i + 1, -1):
                    sub = hits.get(tok[i:j])
                    if sub is not None and sub is not hit:
                        out.append(sub)
                        i = j
                        break
                else:
                    i += 1
            found = tuple(out)
        if not found and tok not in self._blocked:
            cues = [(t, w) for ch in dict.fromkeys(tok) for t, w in self._char_cues.get(ch, ())]
            if cues:
                found = (
                    _Hit(
                        word=tok,
                        types=(),
                        negative=(),
                        tiers=tuple(cues),
                        obstruction=any(t == "obstruction" for t, _ in cues),
                    ),
                )
        return found

    def _segment(self, text: str) -> list[str]:
        """jieba accurate mode without HMM: the tokens of
        ``self.tokenizer.lcut(text, HMM=False)``."""
        if self._lexicon is not None:
            return self._lexicon.cut(text)
        return self._segment_python(text)

    def _segment_python(self, text: str) -> list[str]:
        """`_segment` in Python, in one pass per block."""
        tk = self.tokenizer
        if self._logtotal is None or len(self._logp) > _MEMO_LIMIT:
            self._logp = {}
            self._logtotal = log(tk.total)
        logp, freq, logtotal = self._logp, tk.FREQ, self._logtotal
        out: list[str] = []
        for block in _RE_HAN.split(text):
            if not block:
                continue
            if _RE_HAN.match(block):
                _cut_block(block, logp, freq, logtotal, out)
            else:
                for part in _RE_SKIP.split(block):
                    if _RE_SKIP.match(part):
                        out.append(part)  # "\r\n" stays one token
                    else:
                        out.extend(part)
        return out


_ABSENT = object()  # fragment not in the dictionary: stop extending
_PREFIX = object()  # only a prefix of dictionary words: extend, but not a word
_UNSEEN = object()


def _cut_block(block: str, logp: dict, freq: dict, logtotal: float, out: list[str]) -> None:
    """jieba's get_DAG + calc + __cut_DAG_NO_HMM for one block, in one pass.

    `logp` memoises, per fragment, log(freq) - log(total) (or _PREFIX / _ABSENT), so
    the big dictionary and `log` are consulted once per distinct fragment."""
    n = len(block)
    best = [0.0] * (n + 1)
    nxt = [0] * (n + 1)
    get = logp.get
    for k in range(n - 1, -1, -1):
        bscore = 0.0
        bend = -1
        i = k + 1
        frag = block[k]
        while True:
            v = get(frag, _UNSEEN)
            if v is _UNSEEN:
                f = freq.get(frag)
                v = _ABSENT if f is None else (_PREFIX if f == 0 else log(f) - logtotal)
                logp[frag] = v
            if v is _ABSENT:
                break
            if v is not _PREFIX:
                score = v + best[i]
                if bend < 0 or score >= bscore:  # ties go to the longer word, as in jieba
                    bscore = score
                    bend = i
            if i >= n:
                break
            i += 1
            frag = block[k:i]
        if bend < 0:  # unknown character: a word of its own with frequency 1
            bscore = best[k + 1] - logtotal
            bend = k + 1
        best[k] = bscore
        nxt[k] = bend
    x = 0
    buf = ""
    while x < n:
        y = nxt[x]
        word = block[x:y]
        if y - x == 1 and word.isascii() and word.isalnum():  # jieba's re_eng: glue letters/digits
            buf += word
        else:
            if buf:
                out.append(buf)
                buf = ""
            out.append(word)
        x = y
    if buf:
        out.append(buf)


def _mark_tokens(
    tokens: list[str], memo: Mapping[str, _Token], skip: _Token, keep: Mapping[str, object] | None = None
) -> list[tuple[int, str, _Token]] | None:
    """The (position, token, entry) whose entry is not `skip`, or which are in
    `keep`; None when a token has no entry yet (handlers._speedups.mark_tokens
    in Python)."""
    try:
        entries = [memo[tok] for tok in tokens]
    except KeyError:
        return None
    return [
        (pos, tok, entry)
        for pos, (tok, entry) in enumerate(zip(tokens, entries))
        if entry is not skip or (keep is not None and tok in keep)
    ]


def _clause_factors(decay: float, floor: float) -> tuple[float, ...]:
    """The weight of a keyword by its clause (0, 1, ...): each clause `decay`
    less than the one before, never below `floor`; the last value holds after."""
    factors = [1.0]
    while True:
        factor = max(floor, 1.0 - decay * len(factors))
        factors.append(factor)
        if factor == floor or decay <= 0:
            return tuple(factors)


def _compile_hits(
    tables: KeywordTables, names: Sequence[str], addressed: Mapping[str, tuple[int, ...]]
) -> dict[str, _Hit]:
    index = {name: i for i, name in enumerate(names)}
    plus: dict[str, list[tuple[int, float]]] = {}
    minus: dict[str, list[tuple[int, float]]] = {}
    tiers: dict[str, list[tuple[str, float]]] = {}
    for name, table in tables.types.items():
        for word, weight in table.words.items():
            plus.setdefault(word, []).append((index[name], weight))
        for word, weight in table.negative.items():
            minus.setdefault(word, []).append((index[name], weight))
    for tier, table in tables.tiers.items():
        for word, weight in table.words.items():
            tiers.setdefault(word, []).append((tier, weight))
        for word, weight in table.negative.items():
            tiers.setdefault(word, []).append((tier, -weight))
    return {
        word: _Hit(
            word=word,
            types=tuple(plus.get(word, ())),
            negative=tuple(minus.get(word, ())),
            tiers=tuple(tiers.get(word, ())),
            obstruction=any(t == "obstruction" and w > 0 for t, w in tiers.get(word, ())),
            addressed=addressed.get(word, ()),
        )
        for word in set(plus) | set(minus) | set(tiers)
    }


def _compile_overlay(overlay: "Overlay | None", names: Sequence[str]) -> dict[str, tuple[tuple[int, float], ...]]:
    if overlay is None:
        return {}
    index = {name: i for i, name in enumerate(names)}
    out: dict[str, tuple[tuple[int, float], ...]] = {}
    for token, deltas in overlay.weights.items():
        pairs = tuple((index[t], float(d)) for t, d in deltas.items() if t in index and d)
        if pairs:
            out[normalize(token)] = pairs
    return out


def build_classifier(
    tables: KeywordTables,
    cache_dir: Path | str | None,
    overlay: "Overlay | None" = None,
    model: "CorpusModel | None" = None,
    pure_python: bool = False,
) -> Classifier:
    """Create the tokenizer (own instance, cached prefix dictionary) and the classifier.

    `cache_dir` holds jieba's prefix-dictionary cache (created if missing); None
    uses the system temporary directory. The first start builds the cache (cold),
    later starts load it (warm)."""
    import jieba  # imported here: no jieba work at import time of this module

    tokenizer = jieba.Tokenizer()
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tokenizer.tmp_dir = str(cache_dir)
    tokenizer.cache_file = CACHE_FILE
    if cache_dir is None or not _load_jieba_cache(tokenizer, Path(cache_dir) / CACHE_FILE):
        tokenizer.initialize()  # loads or builds (and writes) the cache itself
    for word in sorted(tables.vocabulary()):
        if len(word) < 2:
            continue  # a single character is always a token of its own when unclaimed
        tokenizer.add_word(word, freq=tokenizer.suggest_freq(word, tune=False) * _FREQ_BOOST)
    return Classifier(tables, tokenizer, overlay, model, pure_python)


def _load_jieba_cache(tokenizer: "jieba.Tokenizer", path: Path) -> bool:
    """What `Tokenizer.initialize()` does with a cache of the default dictionary,
    but reading the file whole first: jieba's `marshal.load` on the open file
    takes ~3x as long as `marshal.loads` of its bytes (0.41 s vs 0.14 s here).
    False (the caller falls back to jieba) when there is no usable cache."""
    import marshal

    try:
        freq, total = marshal.loads(path.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return False
    if not isinstance(freq, dict) or not freq or not isinstance(total, int):
        return False
    tokenizer.FREQ, tokenizer.total, tokenizer.initialized = freq, total, True
    return True


def resolve_unit(
    unit_type: str | None,
    project_office_key: str | None,
    units: Iterable[UnitRef],
    parents: Mapping[str, str | None],
) -> UnitRef | None:
    """属地 resolution: the unit of `unit_type` at the project's office, else at the
    nearest ancestor office that has one (a county project falls back to the city's
    unit). `parents` maps office key -> parent office key (None at the top). A
    project without an office (or a city-level one) resolves at the top office(s).
    Returns None when no office on the way has a unit of that type."""
    if unit_type is None:
        return None
    by_office: dict[str, UnitRef] = {}
    for unit in sorted(units, key=lambda u: u.key):
        if unit.unit_type == unit_type:
            by_office.setdefault(unit.office_key, unit)
    if project_office_key is None:
        for office in sorted(k for k, parent in parents.items() if parent is None):
            if office in by_office:
                return by_office[office]
        return None
    office: str | None = project_office_key
    visited: set[str] = set()
    while office is not None and office not in visited:
        visited.add(office)
        if office in by_office:
            return by_office[office]
        office = parents.get(office)
    return None


def classify_to_json(classifier: Classifier, text: str, resolved_unit_name: str | None) -> dict:
    """The `kpbot classify` line for one report."""
    triage = classifier.classify(text)
    return {
        "text": text,
        "unit_type": triage.unit_type,
        "unit": resolved_unit_name if triage.unit_type is not None else None,
        "tier": triage.tier,
        "confidence": triage.confidence,
        "matched": list(triage.matched_words()),
        "candidates": [[t, s] for t, s in triage.candidates],
        "needs_office": triage.needs_office,
    }
