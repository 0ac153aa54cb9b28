"""The one way a folder of the lake is replaced: write it aside, swap it in, recover after a crash.

Models, serving versions, id dictionaries and an ingest's partitions are all replaced like this:

1. the new folder is written under a hidden staging name beside its target
   (``.<name>.staging-<id>``, or an ingest batch's own staging folder): readers never see it;
2. ``swap_in`` renames the old target aside (``.<name>.old``), renames the new one into place,
   then deletes the old one. Renames move no data; the old folder exists until the new one
   is in place;
3. ``recover`` runs at the start of every step that swaps. A crash between the two renames
   leaves the target missing and ``.<name>.old`` present: the old folder is put back, so a
   step that crashes, or whose retry fails, never loses the previous model or version. A
   crash after the second rename leaves a complete target and a stale ``.old``: deleted.
   Staging folders left by a crashed writer are deleted.

Hidden names keep Spark readers and partition listings out (``batch=B.old`` would read as a
partition value). Nothing here imports pyspark.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

# The one rename the protocol does (os.replace: atomic within a file system), by name so a
# test can interrupt exactly this protocol's renames.
rename = os.replace
_STAGING = ".staging-"
_OLD = ".old"


def aside(target: Path) -> Path:
    """Where ``swap_in`` keeps the old folder during a swap."""
    return target.with_name(f".{target.name}{_OLD}")


def staging(target: Path) -> Path:
    """A fresh hidden sibling to write the new version of ``target`` into."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.with_name(f".{target.name}{_STAGING}{uuid.uuid4().hex[:12]}")


def swap_in(staged: Path, target: Path) -> None:
    """Replace ``target`` by the fully written folder ``staged``, by two renames."""
    old = aside(target)
    if old.exists():  # a stale copy from an earlier crash after its second rename
        shutil.rmtree(old)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        rename(target, old)
    rename(staged, target)
    if old.exists():
        shutil.rmtree(old)


def recover(target: Path) -> list[str]:
    """Undo what a crash left around ``target``; returns what was restored or removed."""
    done: list[str] = []
    old = aside(target)
    if old.exists():
        if target.exists():  # the new folder made it: the old copy is just stale
            shutil.rmtree(old)
            done.append(f"removed stale {old}")
        else:
            rename(old, target)
            done.append(f"restored {target} from an interrupted swap")
    if target.parent.is_dir():
        for leftover in target.parent.glob(f".{target.name}{_STAGING}*"):
            shutil.rmtree(leftover, ignore_errors=True)
            done.append(f"removed interrupted write {leftover}")
    for line in done:
        log.warning("%s", line)
    return done


def targets_with_leftovers(parent: Path, pattern: str = "*") -> list[Path]:
    """Targets under ``parent`` (matched by ``pattern``, e.g. ``event_date=*/batch=*``) that
    an interrupted swap or write left something beside."""
    if not parent.is_dir():
        return []
    found: set[Path] = set()
    *dirs, name = pattern.split("/")
    folder_pattern = "/".join(dirs)
    folders = [parent] if not dirs else [p for p in parent.glob(folder_pattern) if p.is_dir()]
    for folder in folders:
        for hidden in folder.glob(".*"):
            stem = hidden.name[1:]
            if stem.endswith(_OLD):
                stem = stem[: -len(_OLD)]
            elif _STAGING in stem:
                stem = stem.split(_STAGING, 1)[0]
            else:
                continue
            candidate = folder / stem
            if candidate.match(name):
                found.add(candidate)
    return sorted(found)


def recover_all(parent: Path, pattern: str = "*") -> list[str]:
    """``recover`` every target under ``parent`` matching ``pattern`` that needs it."""
    done: list[str] = []
    for target in targets_with_leftovers(parent, pattern):
        done += recover(target)
    return done
