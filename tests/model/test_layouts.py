"""The ALS layouts' shared contract (every layout must pass it, as `implicit`'s models share a
test mixin), and each grid layout against a single-process solution."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from implicit.cpu._als import least_squares, least_squares_cg
from musicrec.config import LAYOUTS, ALSConfig
from musicrec.evaluation import metrics
from musicrec.exceptions import ConfigError
from musicrec.generator.interactions import SIZES, interactions
from musicrec.lake import io
from musicrec.model import blocks, full_gridify, grid, half_gridify, layouts

from tests.model.test_mllib import two_groups as checkerboard

pytestmark = pytest.mark.unit
REG = {"mllib": 0.01, "half-gridify": 0.1, "full-gridify": 0.1}
# Full gridify runs several short jobs per half-iteration: fewer iterations keep it quick,
# and exact solves need fewer.
ITERATIONS = {"mllib": 10, "half-gridify": 10, "full-gridify": 5}


def factors_of(trained: layouts.Trained) -> tuple[dict, dict]:
    users = {r.id: np.array(r.features) for r in trained.users.collect()}
    items = {r.id: np.array(r.features) for r in trained.items.collect()}
    return users, items


@pytest.mark.parametrize("layout", LAYOUTS)
def test_known_answer_the_held_out_item_ranks_in_the_top_3(spark, layout):
    data, held = checkerboard(spark)
    cfg = ALSConfig(
        layout=layout, rank=4, reg_param=REG[layout], alpha=10, max_iter=ITERATIONS[layout]
    )
    users, items = factors_of(layouts.fit(spark, data, cfg))
    seen = {u: {i for i in range(20) if i // 10 == u // 20 and i != held[u]} for u in held}
    for u, vector in users.items():
        scores = np.full(20, -np.inf)
        for i, y in items.items():
            if i not in seen[u]:
                scores[i] = vector @ y
        assert held[u] in metrics.top_k(scores, 3), (layout, u, held[u])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_same_input_and_seed_give_identical_factors(spark, layout):
    data, _ = checkerboard(spark)
    cfg = ALSConfig(layout=layout, rank=3, max_iter=2, seed=7)
    a_users, a_items = factors_of(layouts.fit(spark, data, cfg))
    b_users, b_items = factors_of(layouts.fit(spark, data, cfg))
    for a, b in ((a_users, b_users), (a_items, b_items)):
        assert a.keys() == b.keys()
        assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def tiny(spark):
    """2,000 users x 500 items from the generator's latent world, ~20k pairs."""
    train = interactions(SIZES["tiny"], seed=3)["train"][["user_idx", "item_idx", "rating"]]
    return spark.createDataFrame(train), train


def reference(train: pd.DataFrame, cfg: ALSConfig, solver) -> tuple[np.ndarray, np.ndarray]:
    """Single-process ALS with implicit's kernels on the whole matrix, same start."""
    conf = 1.0 + cfg.alpha * train["rating"].to_numpy(np.float64)
    cui = sp.csr_matrix(
        (conf.astype(np.float32), (train["user_idx"], train["item_idx"])), dtype=np.float32
    )
    shape = grid.Shape(cui.shape[0], cui.shape[1], cui.nnz, "")
    users, items = grid.initial_factors(shape, cfg.rank, cfg.seed)
    ciu = cui.T.tocsr()
    for _ in range(cfg.max_iter):
        solver(cui, users, items, cfg.regularization, num_threads=1)
        solver(ciu, items, users, cfg.regularization, num_threads=1)
    return users, items


def top10(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    return np.argsort(-(users @ items.T), axis=1, kind="stable")[:, :10]


@pytest.mark.parametrize(
    ("module", "solver", "kernel"),
    [
        (half_gridify, "cg", least_squares_cg),
        (half_gridify, "cholesky", least_squares),
        (full_gridify, "cholesky", least_squares),
    ],
    ids=["half-cg", "half-cholesky", "full"],
)
def test_grid_layouts_match_a_single_process_solution(spark, tiny, module, solver, kernel):
    frame, train = tiny
    cfg = ALSConfig(layout=module.LAYOUT, rank=8, reg_param=1.0, alpha=5, max_iter=5, solver=solver)
    fitted = module.fit(spark, frame, cfg)  # a frame: written out, read back, removed
    assert not list(Path(urlparse(spark.sparkContext.getCheckpointDir()).path).glob("grid-*"))
    want_users, want_items = reference(train, cfg, kernel)
    rated = np.unique(train["user_idx"])
    scale = np.abs(want_users[rated]).max()
    assert np.abs(fitted.users[rated] - want_users[rated]).max() <= 1e-3 * scale
    assert np.abs(fitted.items - want_items).max() <= 1e-3 * np.abs(want_items).max()
    same = (top10(fitted.users[rated], fitted.items) == top10(want_users[rated], want_items)).all(1)
    assert same.mean() >= 0.98
    if module is half_gridify:  # where the fit's time went, from the tasks and the driver
        d = fitted.details
        assert 0 < d["kernel_seconds"] <= d["kernel_task_seconds"]
        assert d["kernel_seconds"] < d["alternate_seconds"] < fitted.seconds
        assert d["build_seconds"] + d["alternate_seconds"] <= fitted.seconds + 0.01  # rounding
        assert d["blocks_rebuilt"] == 0  # every task found its block where it was staged
        assert staged_on_executor(spark) == []  # released with the fit


def staged_on_executor(spark) -> list[str]:
    """Folders of staged blocks in the (local) executor's Spark local directory."""

    def listing(_):
        root = blocks.local_root()
        return sorted(str(p.relative_to(root)) for p in root.glob("*/*")) if root.exists() else []

    return spark.sparkContext.parallelize([0], 1).flatMap(listing).collect()


def test_full_gridify_cell_sums_equal_a_dense_computation():
    rng = np.random.default_rng(1)
    dense = np.where(rng.random((30, 12)) < 0.3, rng.uniform(1, 20, (30, 12)), 0)
    dense[7] = 0  # a row of the block with no rating in this cell
    rows, cols = np.nonzero(dense)
    cell = blocks.to_block(rows, cols, dense[rows, cols].astype(np.float32))
    factors = rng.standard_normal((12, 4)).astype(np.float32)
    a_upper, b = full_gridify.partial_sums(cell, 30, factors)
    i, j = full_gridify.upper(4)
    for u in range(30):
        weight = np.where(dense[u] > 0, dense[u] - 1, 0)
        a = (factors.T * weight) @ factors  # sum over rated items of (c - 1) y y^T
        np.testing.assert_allclose(a_upper[u], a[i, j], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(b[u], dense[u] @ factors, rtol=1e-4, atol=1e-4)
    assert not a_upper[7].any() and not b[7].any()


def test_half_gridify_refuses_up_front_when_broadcasts_exceed_the_budget(spark, tiny):
    frame, _ = tiny
    cfg = ALSConfig(layout="half-gridify", rank=1000, broadcast_budget_mb=1)
    with pytest.raises(ConfigError, match="full-gridify .* and mllib"):
        half_gridify.fit(spark, frame, cfg)


@pytest.mark.parametrize("module", [half_gridify, full_gridify], ids=["half", "full"])
def test_a_resumed_fit_ends_where_an_uninterrupted_one_does(spark, tiny, tmp_path, module):
    frame, _ = tiny
    cfg = ALSConfig(layout=module.LAYOUT, rank=6, max_iter=4, checkpoint_interval=2)
    saved = grid.Checkpoints(tmp_path / "run", {}, 2)
    whole = module.fit(spark, frame, cfg, saved)  # leaves its checkpoint of iteration 2
    assert saved.written == [2] and whole.details["resumed_from_iteration"] is None
    resumed = module.fit(spark, frame, cfg, grid.Checkpoints(tmp_path / "run", {}, 2))
    assert resumed.details["resumed_from_iteration"] == 2
    np.testing.assert_array_equal(resumed.users, whole.users)
    np.testing.assert_array_equal(resumed.items, whole.items)
    # Another run (other parameters, or other data) does not pick the checkpoint up.
    shape = grid.shape_of(frame)
    blocks_ = saved.key["blocks"]
    other = ALSConfig(**{**vars(cfg), "max_iter": 5})
    for key in (
        grid.checkpoint_key(module.LAYOUT, other, blocks_, shape),
        grid.checkpoint_key(module.LAYOUT, cfg, blocks_, grid.Shape(1, 1, 1, "other data")),
    ):
        assert grid.Checkpoints(tmp_path / "run", key, 2).load() is None
    assert grid.Checkpoints(tmp_path / "run", saved.key, 2).load() is not None


def test_blocks_hold_their_keys_ratings_read_from_the_files(spark, tiny, tmp_path):
    """Each block's task reads every file and row group of the split and keeps its own key's
    ratings, as confidences; files that are not the ratings' rows are refused, not trained on."""
    frame, train = tiny
    frame.repartition(3).write.option("parquet.block.size", 64 * 1024).parquet(str(tmp_path / "r"))
    files = [str(f) for f in io.parquet_files(tmp_path / "r")]
    assert len(files) == 3 and sum(pq.ParquetFile(f).num_row_groups for f in files) > 3
    ratings = spark.read.parquet(str(tmp_path / "r"))
    # The shape from the footers (row counts, statistics) is the one Spark aggregates; files
    # without statistics fall back to the aggregation.
    from_footers = grid.shape_of(ratings, files)
    aggregated = grid.shape_of(ratings)
    for field in ("n_users", "n_items", "pairs"):
        assert getattr(from_footers, field) == getattr(aggregated, field)
    assert grid.footer_shape(files) == from_footers
    assert grid.shape_of(ratings, files, counted=len(train)) == from_footers
    with pytest.raises(ValueError, match="the files given are not the ratings' rows"):
        grid.shape_of(ratings, files, counted=len(train) + 1)  # a caller's count is checked
    bare = tmp_path / "no-statistics.parquet"
    pq.write_table(pq.read_table(files[0]), bare, write_statistics=False)
    assert grid.footer_shape([str(bare)]) is None
    keyings = [blocks.Keying(by, by, 3, blocks.modulo(3)) for by in ("user", "item")]
    built = blocks.build(spark.sparkContext, files, keyings, 5.0)
    assert built.pairs == {"user": len(train), "item": len(train)}
    # The build's one job left every block in Spark's cache (counted in the JVM).
    cached = {
        info.id(): info.numCachedPartitions()
        for info in spark.sparkContext._jsc.sc().getRDDStorageInfo()
    }
    assert [cached.get(built.rdds[by].id()) for by in ("user", "item")] == [3, 3]
    users, items = train["user_idx"].to_numpy(), train["item_idx"].to_numpy()
    conf = (1 + 5.0 * train["rating"].to_numpy(np.float64)).astype(np.float32)
    for by, (rows, cols) in {"user": (users, items), "item": (items, users)}.items():
        got = dict(built.rdds[by].collect())
        assert sorted(got) == [0, 1, 2]
        for key, block in got.items():
            mine = rows % 3 == key
            want = sp.csr_matrix((conf[mine], (rows[mine], cols[mine])))[np.unique(rows[mine])]
            np.testing.assert_array_equal(block.rows, np.unique(rows[mine]))
            np.testing.assert_array_equal(built.rows[by][key], block.rows)
            assert (block.csr(want.shape[1]) != want).nnz == 0
        built.rdds[by].unpersist()
    cfg = ALSConfig(layout="half-gridify", rank=4, max_iter=1)
    with pytest.raises(ValueError, match="the files given are not the ratings' rows"):
        half_gridify.fit(spark, ratings, cfg, files=files[:2])


def test_staged_blocks_are_mapped_from_the_executors_disk_rebuilt_if_missing_and_released(
    spark, tiny, tmp_path
):
    """Half gridify's blocks: one job writes them to the executor's Spark local directory and
    each task memory-maps its own; a block missing where its task runs is rebuilt there from
    the files, the same block, and the fit gives the same factors; release removes them."""
    frame, train = tiny
    frame.repartition(2).write.parquet(str(tmp_path / "r"))
    files = [str(f) for f in io.parquet_files(tmp_path / "r")]
    ratings = spark.read.parquet(str(tmp_path / "r"))
    keyings = [blocks.Keying(by, by, 3, blocks.modulo(3)) for by in ("user", "item")]
    sc = spark.sparkContext

    def stage():
        built = blocks.stage(sc, files, keyings, 5.0)
        assert built.pairs == {"user": len(train), "item": len(train)}
        return built, built.staged

    built, staged = stage()
    token = staged.token
    assert staged_on_executor(spark) == [
        f"{token}/{by}-{k}" for by in ("item", "user") for k in range(3)
    ]

    def loaded(drop: tuple[str, int] | None):
        def task(_):
            if drop is not None:
                shutil.rmtree(staged.folder(*drop))
            out = []
            for by in ("user", "item"):
                for key in range(3):
                    block, rebuilt = staged.load(by, key)
                    mapped = all(isinstance(a, np.memmap) for a in block)
                    out.append((by, key, rebuilt, mapped, [np.array(a) for a in block]))
            return out

        return sc.parallelize([0], 1).flatMap(task).collect()

    for by, key, rebuilt, mapped, arrays in loaded(None):
        want = blocks.read_block(files, next(k for k in keyings if k.name == by), 5.0, key)
        assert not rebuilt and mapped
        assert all(np.array_equal(a, b) for a, b in zip(arrays, want, strict=True))
        np.testing.assert_array_equal(built.rows[by][key], want.rows)
    after_drop = {
        (by, key): (rebuilt, mapped) for by, key, rebuilt, mapped, _ in loaded(("user", 1))
    }
    assert after_drop.pop(("user", 1)) == (True, False)  # rebuilt in the task, from the files
    assert set(after_drop.values()) == {(False, True)}
    assert len(staged_on_executor(spark)) == 6  # and staged again

    # A fit whose user block 1 is gone mid-run gives the factors of one that had it.
    cfg = ALSConfig(layout="half-gridify", rank=4, max_iter=2, alpha=5.0)
    shape = grid.shape_of(ratings, files)
    whole, _ = half_gridify.alternate(spark, built, shape, cfg, None, None)
    blocks.release(built)
    assert staged_on_executor(spark) == []
    cached = {i.id() for i in sc._jsc.sc().getRDDStorageInfo()}
    assert built.rdds["user"].id() not in cached
    built, staged = stage()
    sc.parallelize([0], 1).foreach(lambda _: shutil.rmtree(staged.folder("user", 1)))
    missing, kernel = half_gridify.alternate(spark, built, shape, cfg, None, None)
    blocks.release(built)
    assert kernel.rebuilt == 1
    np.testing.assert_array_equal(missing.users, whole.users)
    np.testing.assert_array_equal(missing.items, whole.items)


def test_blocks_are_csr_sorted_by_row_then_column_and_refuse_duplicate_pairs():
    rng = np.random.default_rng(4)
    pairs = rng.choice(500 * 300, size=20_000, replace=False)  # unique (row, column) pairs
    rows, cols = (pairs // 300 * 3).astype(np.int32), (pairs % 300).astype(np.int32)
    conf = rng.uniform(1, 20, pairs.size).astype(np.float32)
    block = blocks.to_block(rows, cols, conf)
    order = np.lexsort((cols, rows))
    want_ids, counts = np.unique(rows, return_counts=True)
    np.testing.assert_array_equal(block.rows, want_ids)
    np.testing.assert_array_equal(block.indptr, np.concatenate([[0], np.cumsum(counts)]))
    np.testing.assert_array_equal(block.indices, cols[order])
    np.testing.assert_array_equal(block.data, conf[order])
    assert [a.dtype for a in block] == [np.int32, np.int32, np.int32, np.float32]
    empty = blocks.to_block(np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.float32))
    assert empty.nnz == 0 and empty.rows.size == 0 and list(empty.indptr) == [0]
    with pytest.raises(ValueError, match="1 duplicate"):
        blocks.to_block(rows[[0, 0, 1]], cols[[0, 0, 1]], conf[:3])
