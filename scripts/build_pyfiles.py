"""Zip what the Spark jobs import for spark-submit --py-files (deterministic: sorted entries,
fixed times).

Executors get only the modules ``spark_jobs/*.py`` import, directly or through each other
(found by reading their ``import`` statements, those inside functions included), with their
packages' ``__init__``: not the cluster launcher, the generator, the importers or the
Airflow side.

    python scripts/build_pyfiles.py include dist/musicrec.zip [spark_jobs]
"""

from __future__ import annotations

import ast
import sys
import zipfile
from pathlib import Path

PACKAGE = "musicrec"


def module_file(src_root: Path, name: str) -> Path | None:
    base = src_root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported(path: Path, src_root: Path) -> set[str]:
    """The ``musicrec`` modules one file imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != PACKAGE:
                continue
            names.add(node.module)
            for alias in node.names:  # `from musicrec.lake import io`: io is a module
                if module_file(src_root, f"{node.module}.{alias.name}"):
                    names.add(f"{node.module}.{alias.name}")
    return names


def closure(entry_points: list[Path], src_root: Path) -> list[Path]:
    """Every library file the entry points need, with the ``__init__`` of each package."""
    todo = {n for p in entry_points for n in imported(p, src_root)}
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # the packages on the way
            prefix = ".".join(parts[:i])
            if prefix in seen:
                continue
            seen.add(prefix)
            found = module_file(src_root, prefix)
            if found is None:
                raise SystemExit(f"{prefix} is imported but not found under {src_root}")
            todo |= imported(found, src_root) - seen
    return sorted({module_file(src_root, n) for n in seen} - {None})  # type: ignore[arg-type]


def build(src_root: Path, target: Path, jobs: Path) -> list[Path]:
    files = closure(sorted(jobs.glob("*.py")), src_root)
    tmp = target.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            info = zipfile.ZipInfo(str(path.relative_to(src_root)), date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    tmp.replace(target)
    return files


if __name__ == "__main__":
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    jobs_dir = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(__file__).parents[1] / "spark_jobs"
    shipped = build(src, out, jobs_dir)
    print(f"{out}: {len(shipped)} modules")
