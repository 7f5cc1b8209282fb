"""What the triage tests share: the labelled sets and how a classifier is measured on them."""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "config" / "triage_corpus"


def rows(name: str) -> list[dict]:
    """A labelled set by file name: tests/data, else config/triage_corpus."""
    path = DATA / name if (DATA / name).exists() else CORPUS / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def measure(classifier, labelled: list[dict]) -> dict:
    top1 = tier_ok = obstruction = obstruction_hit = routable = routable_to_office = 0
    for row in labelled:
        t = classifier.classify(row["text"])
        top1 += t.unit_type == row["unit_type"]
        tier_ok += t.tier == row["tier"]
        if row["tier"] == "obstruction":
            obstruction += 1
            obstruction_hit += t.tier == "obstruction"
        if row["unit_type"] is not None:
            routable += 1
            routable_to_office += t.needs_office
    return {
        "top1": top1 / len(labelled),
        "tier": tier_ok / len(labelled),
        "obstruction_recall": obstruction_hit / obstruction,
        "routable_to_office": routable_to_office / routable,
    }
