"""How much history is kept: one rule for serving versions and models alike.

Kept: the serving version and the ``keep - 1`` most recently published others, in the
database (``Store._retire``) and as Parquet under ``serving/versions/``; and the models those
versions were built from (so a rollback finds its champion) plus the ``keep`` newest model
runs. The serving version and the champion model are never removed.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from musicrec.serving.store import Store

log = logging.getLogger(__name__)
SEARCH = "search"  # models/search/<model-id>: the validation split a search fitted on


def _visible(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _as_of(run: Path) -> str:
    meta = run / "metadata.json"
    try:
        return str(json.loads(meta.read_text())["data"]["as_of"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def prune_versions(versions_dir: Path, registered: set[str]) -> list[str]:
    """Remove the Parquet folders of versions the database no longer holds."""
    removed = []
    for folder in _visible(versions_dir):
        if folder.name not in registered:
            shutil.rmtree(folder)
            removed.append(folder.name)
    return removed


def prune_models(runs_dir: Path, protected: set[str], keep: int) -> list[str]:
    """Remove model runs beyond the ``keep`` newest (by as-of date, then time written),
    except ``protected`` ones (names), with their search folders (``models/search/<id>``)."""
    runs = sorted(_visible(runs_dir), key=lambda p: (_as_of(p), p.stat().st_mtime, p.name))
    newest = {p.name for p in runs[-keep:]} if keep > 0 else set()
    removed = []
    for run in runs:
        if run.name not in newest and run.name not in protected:
            shutil.rmtree(run)
            shutil.rmtree(runs_dir.parent / SEARCH / run.name, ignore_errors=True)
            removed.append(run.name)
    return removed


def protected_models(store: Store) -> set[str]:
    """Model run names the registered versions were built from (the champion among them)."""
    return {Path(v["model"]).name for v in store.versions()}


def apply(store: Store, versions_dir: Path, runs_dir: Path, keep: int) -> dict[str, list[str]]:
    """Prune versions and models to what the rule keeps; returns what was removed."""
    registered = {v["version"] for v in store.versions()}
    removed = {
        "versions": prune_versions(versions_dir, registered),
        "models": prune_models(runs_dir, protected_models(store), keep),
    }
    if removed["versions"] or removed["models"]:
        log.info("retention (keep %d): removed %s", keep, removed)
    return removed
