"""The one swap protocol: a folder is replaced by renames and recovered after a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from musicrec.lake import io, swap

pytestmark = pytest.mark.unit


def folder(path: Path, content: str) -> Path:
    path.mkdir(parents=True)
    (path / "part-0").write_text(content)
    return path


def content(path: Path) -> str:
    return (path / "part-0").read_text()


def crash_on_second_rename(monkeypatch) -> None:
    """The next swap dies after putting the old folder aside, before renaming the new one
    into place (a killed driver)."""
    calls: list[object] = []
    real = swap.rename

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("killed (injected)")
        real(src, dst)

    monkeypatch.setattr(swap, "rename", replace)


def test_swap_replaces_and_leaves_nothing_beside(tmp_path):
    target = folder(tmp_path / "runs" / "m1", "old")
    staged = swap.staging(target)
    folder(staged, "new")
    assert staged.name.startswith(".m1.staging-")
    swap.swap_in(staged, target)
    assert content(target) == "new"
    assert [p.name for p in target.parent.iterdir()] == ["m1"]


def test_a_crash_between_the_renames_is_undone_by_recover(tmp_path, monkeypatch):
    target = folder(tmp_path / "m1", "old")
    staged = folder(swap.staging(target), "new")
    crash_on_second_rename(monkeypatch)
    with pytest.raises(OSError, match="injected"):
        swap.swap_in(staged, target)
    monkeypatch.undo()
    assert not target.exists() and content(swap.aside(target)) == "old"
    done = swap.recover(target)
    assert content(target) == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["m1"]  # staging removed too
    assert any("restored" in line for line in done) and any("interrupted" in line for line in done)


def test_a_crash_after_the_second_rename_keeps_the_new_folder(tmp_path):
    target = folder(tmp_path / "m1", "new")
    folder(swap.aside(target), "old")  # the old copy was not deleted yet
    swap.recover(target)
    assert content(target) == "new" and not swap.aside(target).exists()
    assert swap.recover(target) == []  # nothing left to do


def test_partitions_of_a_table_are_recovered_under_its_writer_lock(tmp_path, monkeypatch):
    table = tmp_path / "accepted"
    partition = folder(table / "event_date=2026-01-01" / "batch=b1", "old")
    other = folder(table / "event_date=2026-01-02" / "batch=b1", "kept")
    staged = folder(tmp_path / "stage" / "batch=b1", "new")
    crash_on_second_rename(monkeypatch)
    with pytest.raises(OSError):
        swap.swap_in(staged, partition)
    monkeypatch.undo()
    assert swap.targets_with_leftovers(table, io.PARTITION_FOLDERS) == [partition]
    with io.exclusive_writer(table) as removed:
        assert content(partition) == "old" and content(other) == "kept"
    assert removed == [f"restored {partition} from an interrupted swap"]
