"""What ships to executors (``dist/musicrec.zip``, --py-files): what the Spark jobs import."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import build_pyfiles

pytestmark = pytest.mark.unit
SPARK_APPS = [
    *sorted((ROOT / "spark_jobs").glob("*.py")),
    *sorted((ROOT / "tests" / "apps").glob("*.py")),
    *[
        ROOT / "benchmarks" / n
        for n in ("bare_read_write.py", "mllib_default.py", "score_factors.py")
    ],
]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> set[str]:
    target = tmp_path_factory.mktemp("dist") / "musicrec.zip"
    build_pyfiles.build(ROOT / "include", target, ROOT / "spark_jobs")
    with zipfile.ZipFile(target) as zf:
        names = set(zf.namelist())
    return names | {"zip:" + str(target)}


def test_the_zip_holds_what_the_jobs_import_and_nothing_else(shipped):
    names = {n for n in shipped if not n.startswith("zip:")}
    assert {"musicrec/steps/ingest.py", "musicrec/lake/swap.py", "musicrec/model/mllib.py"} <= names
    for left_out in (
        "musicrec/runtime/cluster.py",
        "musicrec/runtime/submit.py",
        "musicrec/generator/world.py",
        "musicrec/datasets/importers.py",
        "musicrec/orchestration/operators.py",
    ):
        assert left_out not in names, left_out
    for app in SPARK_APPS:  # every Spark application finds its library modules in it
        for module in build_pyfiles.imported(app, ROOT / "include"):
            path = build_pyfiles.module_file(ROOT / "include", module)
            assert path is not None and str(path.relative_to(ROOT / "include")) in names, (
                app.name,
                module,
            )


def test_every_shipped_module_imports_from_the_zip_alone(shipped):
    (zip_path,) = [n[4:] for n in shipped if n.startswith("zip:")]
    modules = sorted(
        n[:-3].replace("/", ".").removesuffix(".__init__") for n in shipped if n.endswith(".py")
    )
    probe = (
        "import importlib, sys\n"
        f"sys.path.insert(0, {zip_path!r})\n"
        f"for name in {modules!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({zip_path!r}), module.__file__\n"
        "print('ok', len(sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("ok"), out.stderr[-3000:]
