"""Zip the library for spark-submit --py-files (deterministic: sorted entries, fixed times)."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path


def build(src_root: Path, target: Path) -> None:
    files = sorted(p for p in (src_root / "musicrec").rglob("*.py") if "__pycache__" not in p.parts)
    tmp = target.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            info = zipfile.ZipInfo(str(path.relative_to(src_root)), date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    tmp.replace(target)


if __name__ == "__main__":
    build(Path(sys.argv[1]), Path(sys.argv[2]))
