"""The public datasets' files as Spark rows, every line accounted for: parsed or rejected.

Layouts (the tests write files in exactly these):

* ``lastfm360k``  ``usersha1-artmbid-artname-plays.tsv``: user, artist MBID, artist name,
  plays; tab-separated, no header. An empty MBID keys the artist by name (``name:<name>``).
* ``hetrec2k``    ``user_artists.dat``: a header ``userID\\tartistID\\tweight``, then user,
  artist, plays; names from ``artists.dat`` beside it (header; id, name, url, picture).
* ``audioscrobbler`` ``user_artist_data.txt``: ``user artist count``, space-separated, no
  header; names from ``artist_data.txt`` beside it (id, tab, name).
* ``lastfm1k``    ``userid-timestamp-artid-artname-traid-traname.tsv``: timestamped scrobbles,
  tab-separated, no header.

Read as lines (``spark.read.text``) and split with Spark's own functions rather than its CSV
reader: the files are not CSV (no quoting; Last.fm 360K has tabs inside artist names, which a
fixed-schema reader would shift into the play count), and a line-level reader lets every line
get exactly one outcome. CRLF endings are stripped; a header where the format has none, an
empty line, a wrong field count, a missing user or artist, a zero, negative, non-numeric or
out-of-range count, an unparsable timestamp, each is a reject with its reason. Rows read =
parsed + rejected (+ the expected header of HetRec). The caller writes the tagged lines once
(``importers.stage``) and takes rows and rejects from that table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

COUNT_FORMATS = ("lastfm360k", "hetrec2k", "audioscrobbler")
EVENT_FORMATS = ("lastfm1k",)
FORMATS = COUNT_FORMATS + EVENT_FORMATS
HETREC_HEADER = "userID\tartistID\tweight"
LINE, REASON, LINE_NO = "line", "reason", "line_no"


@dataclass
class Parsed:
    """Every line once: the format's ``columns`` (null for a reject), ``line_no``, ``line``,
    ``reason`` (null when parsed) and ``_header`` (the expected header line, skipped)."""

    tagged: DataFrame
    columns: list[str]


def good(staged: DataFrame) -> DataFrame:
    return staged.where(~F.col("_header") & F.col(REASON).isNull())


def lines(spark: SparkSession, path: Path) -> DataFrame:
    """(line_no, line): CR stripped; line_no increases with the position in the file (its
    first line is 0), not necessarily by one."""
    raw = spark.read.text(str(path))
    return raw.select(
        F.monotonically_increasing_id().alias(LINE_NO),
        F.regexp_replace(F.col("value"), "\r$", "").alias(LINE),
    )


def _first_reason(*checks: tuple[Column, str]) -> Column:
    out = F.lit(None).cast("string")
    for condition, reason in reversed(checks):
        out = F.when(condition, F.lit(reason)).otherwise(out)
    return out


# Each stage is its own projection over named columns: Spark does not inline a non-trivial
# expression into several uses (CollapseProject), so the split, trims and casts run once per
# line (written as one nested expression, the parse took 3x longer).
def _fields(frame: DataFrame, sep: str, fields: dict[str, Column]) -> DataFrame:
    split = frame.withColumn("_f", F.split(F.col(LINE), sep, -1))
    split = split.withColumn("_n", F.size("_f"))
    return split.select(LINE_NO, LINE, "_n", *[col.alias(name) for name, col in fields.items()])


def _count_checks() -> list[tuple[Column, str]]:
    number = F.col("plays")
    return [
        (~F.col("_count").rlike(r"^-?[0-9]+$"), "non-numeric count"),
        (number.isNull(), "count out of range"),
        (number < 0, "negative count"),
        (number == 0, "zero count"),
    ]


def _split(
    frame: DataFrame, columns: list[str], checks: list[tuple[Column, str]], header: str | None
) -> Parsed:
    first = F.col(LINE_NO) == 0
    expected_header = first & (F.col(LINE) == F.lit(header)) if header else F.lit(False)
    reason = _first_reason((F.col(LINE) == "", "empty line"), *checks)
    if header is None:  # a first line that fails because it is words: say what it is
        reason = F.when(
            first & reason.isin("non-numeric count", "unparsable timestamp"),
            F.lit("header line (the format has none)"),
        ).otherwise(reason)
    tagged = frame.withColumn("_header", expected_header)
    tagged = tagged.withColumn(REASON, F.when(F.col("_header"), F.lit(None)).otherwise(reason))
    return Parsed(tagged.select(LINE_NO, LINE, REASON, "_header", *columns), columns)


COUNT_COLUMNS = ["user_id", "item_id", "item_name", "plays"]


def counts(spark: SparkSession, fmt: str, path: Path) -> Parsed:
    """(user_id, item_id, item_name, plays) of a count format."""
    frame = lines(spark, path)
    f = F.col("_f")
    if fmt == "lastfm360k":
        # Tabs inside an artist name: the name is everything between the MBID and the count.
        name = F.array_join(F.slice(f, 3, F.greatest(F.col("_n") - 3, F.lit(1))), "\t")
        raw = _fields(
            frame,
            "\t",
            {
                "user_id": F.trim(F.get(f, 0)),
                "_mbid": F.trim(F.get(f, 1)),
                "_name": F.trim(name),
                "_count": F.trim(F.element_at(f, -1)),
            },
        )
        item = F.when(F.col("_mbid") != "", F.col("_mbid")).otherwise(
            F.when(F.col("_name") != "", F.concat(F.lit("name:"), F.col("_name")))
        )
        named = raw.select(
            "*",
            item.alias("item_id"),
            F.when(F.col("_name") != "", F.col("_name")).alias("item_name"),
        )
        structure = [(F.col("_n") < 4, "expected 4 tab-separated fields")]
        header = None
    elif fmt in ("hetrec2k", "audioscrobbler"):
        sep = "\t" if fmt == "hetrec2k" else r"\s+"
        if fmt == "audioscrobbler":
            frame = frame.withColumn("_text", F.trim(F.col(LINE)))
        source = F.col("_text") if fmt == "audioscrobbler" else F.col(LINE)
        split = frame.withColumn("_f", F.split(source, sep, -1)).withColumn("_n", F.size("_f"))
        named = split.select(
            LINE_NO,
            LINE,
            "_n",
            F.trim(F.get(f, 0)).alias("user_id"),
            F.trim(F.get(f, 1)).alias("item_id"),
            F.lit(None).cast("string").alias("item_name"),
            F.trim(F.get(f, 2)).alias("_count"),
        )
        kind = "tab" if fmt == "hetrec2k" else "space"
        structure = [(F.col("_n") != 3, f"expected 3 {kind}-separated fields")]
        header = HETREC_HEADER if fmt == "hetrec2k" else None
    else:
        raise ValueError(f"not a count format: {fmt}")
    numbered = named.withColumn("plays", F.col("_count").try_cast("long"))
    checks = [
        *structure,
        (F.col("user_id").isNull() | (F.col("user_id") == ""), "missing user"),
        (F.col("item_id").isNull() | (F.col("item_id") == ""), "missing artist"),
        *_count_checks(),
    ]
    return _split(numbered, COUNT_COLUMNS, checks, header)


def count_rows(spark: SparkSession, fmt: str, path: Path, staged: DataFrame) -> DataFrame:
    """(user_id, item_id, item_name, plays) of the parsed lines, names from the names file
    beside the counts when the format has one."""
    rows = good(staged).select("user_id", "item_id", "item_name", "plays")
    names = names_beside(spark, fmt, path)
    if names is None:
        return rows
    return (
        rows.drop("item_name")
        .join(names, "item_id", "left")
        .select("user_id", "item_id", "item_name", "plays")
    )


def scrobble_rows(staged: DataFrame) -> DataFrame:
    return good(staged).select(
        "user_id", "ts", "artist_id", "artist_name", "track_id", "track_name"
    )


def names_beside(spark: SparkSession, fmt: str, path: Path) -> DataFrame | None:
    """(item_id, item_name) from the names file a format ships beside its counts, if there.
    A names line that does not parse leaves that artist unnamed (names are not interactions)."""
    if fmt == "hetrec2k":
        source, header = path.parent / "artists.dat", True
    elif fmt == "audioscrobbler":
        source, header = path.parent / "artist_data.txt", False
    else:
        return None
    if not source.exists():
        return None
    f = F.split(F.col(LINE), "\t", -1)
    table = lines(spark, source).select(
        F.col(LINE_NO), F.trim(F.get(f, 0)).alias("item_id"), F.trim(F.get(f, 1)).alias("name")
    )
    if header:
        table = table.where(F.col(LINE_NO) != 0)
    return (
        table.where((F.col("item_id") != "") & F.col("name").isNotNull() & (F.col("name") != ""))
        .groupBy("item_id")
        .agg(F.min("name").alias("item_name"))  # a repeated id: one name, deterministically
    )


def scrobbles(spark: SparkSession, path: Path) -> Parsed:
    """(user_id, ts, artist_id, artist_name, track_id, track_name) of Last.fm 1K."""
    f = F.col("_f")
    raw = _fields(
        lines(spark, path),
        "\t",
        {
            "user_id": F.trim(F.get(f, 0)),
            "_stamp": F.trim(F.get(f, 1)),
            "_artist_mbid": F.trim(F.get(f, 2)),
            "artist_name": F.trim(F.get(f, 3)),
            "_track_mbid": F.trim(F.get(f, 4)),
            "track_name": F.trim(F.get(f, 5)),
        },
    )
    artist = F.when(F.col("_artist_mbid") != "", F.col("_artist_mbid")).otherwise(
        F.when(F.col("artist_name") != "", F.concat(F.lit("name:"), F.col("artist_name")))
    )
    keyed = raw.select(
        "*",
        F.try_to_timestamp(F.col("_stamp"), F.lit("yyyy-MM-dd'T'HH:mm:ssX")).alias("ts"),
        artist.alias("artist_id"),
    )
    track = F.when(F.col("_track_mbid") != "", F.col("_track_mbid")).otherwise(
        F.when(
            F.col("track_name") != "",
            F.concat(F.lit("name:"), F.col("artist_id"), F.lit("/"), F.col("track_name")),
        )
    )
    tracked = keyed.withColumn("track_id", track)
    for name in ("artist_name", "track_name"):
        tracked = tracked.withColumn(name, F.when(F.col(name) != "", F.col(name)))
    checks = [
        (F.col("_n") != 6, "expected 6 tab-separated fields"),
        (F.col("user_id").isNull() | (F.col("user_id") == ""), "missing user"),
        (F.col("ts").isNull(), "unparsable timestamp"),
        (F.col("artist_id").isNull(), "missing artist"),
        (F.col("track_id").isNull(), "missing track"),
    ]
    columns = ["user_id", "ts", "artist_id", "artist_name", "track_id", "track_name"]
    return _split(tracked, columns, checks, None)
