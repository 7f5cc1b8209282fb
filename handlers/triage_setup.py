"""Build the classifier once at start-up (off the event loop: jieba's
dictionary load blocks for about a second)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from config.corpus import CORPUS_DIR, corpus_fingerprint, load_corpus
from config.keywords import KeywordTables, load_keywords
from config.settings import PACKAGE_DIR, Settings
from handlers.triage import Classifier, build_classifier
from handlers.triage_learn import Overlay
from handlers.triage_model import CorpusModel, train

log = logging.getLogger(__name__)

OVERLAY_FILE = "triage_overlay.json"
MODEL_CACHE_FILE = "kpbot-triage-model.bin"


def overlay_path(settings: Settings) -> Path:
    return settings.data_dir / OVERLAY_FILE


def build_from_settings(settings: Settings):
    tables = load_keywords(settings.config_file("keywords.toml"))
    cache_dir = settings.data_dir / "cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    overlay = None
    path = overlay_path(settings)
    if path.exists():
        try:
            overlay = Overlay.from_json(path.read_text(encoding="utf-8"))
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            log.error("ignoring %s: %s", path, exc)
    return build_triage(tables, cache_dir, settings.config_file(CORPUS_DIR), overlay)


def build_triage(
    tables: KeywordTables, cache_dir: Path | None, corpus_dir: Path | None = None, overlay: Overlay | None = None
) -> Classifier:
    """The classifier the bot runs: the tables, their tokenizer and the model
    learned from the corpus (default: config/triage_corpus)."""
    model = load_model(tables, corpus_dir if corpus_dir is not None else PACKAGE_DIR / CORPUS_DIR, cache_dir)
    return build_classifier(tables, cache_dir, overlay=overlay, model=model)


def load_model(tables: KeywordTables, corpus_dir: Path, cache_dir: Path | None) -> CorpusModel | None:
    """The model learned from the corpus: from the cache when it was trained on
    these very files with these parameters, else trained now (and cached).
    None when there is no corpus."""
    fingerprint = f"{corpus_fingerprint(corpus_dir)}:alpha={tables.model.alpha!r}"
    cache = cache_dir / MODEL_CACHE_FILE if cache_dir is not None else None
    if cache is not None and cache.exists():
        try:
            model = CorpusModel.from_bytes(cache.read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("rebuilding %s: %s", cache, exc)
        else:
            if model.fingerprint == fingerprint:
                return model
    corpus = load_corpus(corpus_dir)
    if not corpus.reports:
        log.warning("no triage corpus in %s: the keyword tables decide alone", corpus_dir)
        return None
    model = train(corpus.reports, tables.model.alpha, fingerprint)
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_bytes(model.to_bytes())
            tmp.replace(cache)
        except OSError as exc:  # a read-only data dir costs the next start ~0.5 s, nothing more
            log.warning("could not cache the triage model in %s: %s", cache, exc)
    return model


async def load_classifier(settings: Settings):
    return await asyncio.get_running_loop().run_in_executor(None, build_from_settings, settings)
