"""Build the classifier once at start-up (off the event loop: jieba's
dictionary load blocks for about a second)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from config.keywords import load_keywords
from config.settings import Settings
from handlers.triage import build_classifier
from handlers.triage_learn import Overlay

log = logging.getLogger(__name__)

OVERLAY_FILE = "triage_overlay.json"


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
    return build_classifier(tables, cache_dir, overlay=overlay)


async def load_classifier(settings: Settings):
    return await asyncio.get_running_loop().run_in_executor(None, build_from_settings, settings)
