"""The latent world behind generated listening logs: genres, artists, tracks and users.

Everything is derived from one seed with numpy, vectorised, so the world for 360k users and
160k artists builds in seconds. The structure is what collaborative filtering should find:
users mix a few genres (a sparse Dirichlet), artists belong to one genre, popularity is
Zipf-like by rank inside each genre, some genres have many more listeners than others, and
every user has favourite artists they replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_SYLLABLES = np.array(
    [
        "ka",
        "lo",
        "mi",
        "ra",
        "su",
        "te",
        "no",
        "vi",
        "da",
        "ze",
        "po",
        "lu",
        "xa",
        "ne",
        "fi",
        "mo",
        "ru",
        "sa",
        "ti",
        "be",
        "ko",
        "la",
        "vo",
        "re",
        "ja",
    ]
)
_WORDS = np.array(
    [
        "velvet",
        "static",
        "neon",
        "paper",
        "golden",
        "hollow",
        "silent",
        "electric",
        "crimson",
        "lunar",
        "wild",
        "glass",
        "iron",
        "northern",
        "broken",
        "midnight",
        "falling",
        "sugar",
    ]
)
_NOUNS = np.array(
    [
        "foxes",
        "echoes",
        "rivers",
        "engines",
        "tides",
        "ghosts",
        "kings",
        "machines",
        "hearts",
        "lights",
        "wolves",
        "satellites",
        "gardens",
        "strangers",
    ]
)


@dataclass(frozen=True)
class WorldSpec:
    users: int = 2_000
    artists: int = 500
    genres: int = 12
    mean_tracks_per_artist: float = 6.0
    favourites_per_user: int = 12
    zipf_exponent: float = 1.0  # artist popularity by rank inside its genre
    genre_size_exponent: float = 0.7  # listeners per genre, Zipf by genre rank
    taste_concentration: float = 0.1  # Dirichlet parameter: small = few genres per user
    seed: int = 42

    def __post_init__(self) -> None:
        if min(self.users, self.artists, self.genres, self.favourites_per_user) < 1:
            raise ValueError("users, artists, genres and favourites_per_user must be >= 1")
        if min(self.zipf_exponent, self.genre_size_exponent) < 0 or self.taste_concentration <= 0:
            raise ValueError("exponents must be >= 0 and taste_concentration > 0")
        if self.genres > self.artists:
            raise ValueError("need at least one artist per genre")


@dataclass(frozen=True)
class World:
    spec: WorldSpec
    artist_genre: np.ndarray  # [A] genre of each artist
    artist_names: np.ndarray  # [A] str
    genre_artists: list[np.ndarray]  # per genre: artist indices
    genre_cdf: list[np.ndarray]  # per genre: cumulative popularity over genre_artists
    track_offset: np.ndarray  # [A] first track index of each artist
    track_count: np.ndarray  # [A] tracks per artist
    track_duration_ms: np.ndarray  # [T]
    user_genre_cdf: np.ndarray  # [U, G] cumulative genre mix per user
    user_activity: np.ndarray  # [U] relative plays per day
    user_fav: np.ndarray  # [U, F] favourite artist indices
    user_fav_prob: np.ndarray  # [U] probability a play is a favourite
    user_platform: np.ndarray  # [U] main platform index

    @property
    def n_tracks(self) -> int:
        return int(self.track_duration_ms.shape[0])


def _names(rng: np.random.Generator, n: int) -> np.ndarray:
    """Readable, mostly unique artist names; the index suffix keeps them unique."""
    style = rng.integers(0, 2, n)
    first = _SYLLABLES[rng.integers(0, len(_SYLLABLES), n)]
    second = _SYLLABLES[rng.integers(0, len(_SYLLABLES), n)]
    word = _WORDS[rng.integers(0, len(_WORDS), n)]
    noun = _NOUNS[rng.integers(0, len(_NOUNS), n)]
    person = np.char.add(np.char.capitalize(np.char.add(first, second)), " ")
    person = np.char.add(person, np.char.capitalize(np.char.add(second, first)))
    band = np.char.add(np.char.add("The ", np.char.capitalize(word)), " ")
    band = np.char.add(band, np.char.capitalize(noun))
    names = np.where(style == 0, person, band)
    return np.char.add(np.char.add(names, " "), np.arange(n).astype(str))


def sample_artists(
    world_parts: dict[str, Any], users: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Draw one artist per entry of ``users``: genre from the user's mix, artist by popularity."""
    cdf = world_parts["user_genre_cdf"][users]
    u = np.asarray(rng.random(users.shape[0]))[:, None]
    genre = (u >= cdf).sum(axis=1)
    genre = np.minimum(genre, cdf.shape[1] - 1)
    out = np.empty(users.shape[0], dtype=np.int64)
    pick = np.asarray(rng.random(users.shape[0]))
    for g in range(cdf.shape[1]):
        idx = np.nonzero(genre == g)[0]
        if idx.size:
            pos = np.searchsorted(world_parts["genre_cdf"][g], pick[idx], side="right")
            pos = np.minimum(pos, world_parts["genre_artists"][g].size - 1)
            out[idx] = world_parts["genre_artists"][g][pos]
    return out


def build_world(spec: WorldSpec) -> World:
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 1]))
    a, g, u = spec.artists, spec.genres, spec.users
    # Every genre gets at least one artist; the rest are spread at random.
    artist_genre = np.concatenate([np.arange(g), rng.integers(0, g, a - g)])
    rng.shuffle(artist_genre)
    # Zipf-like popularity by rank inside each genre: every genre has its hits and a long tail.
    # (A global Zipf spread over genres made each genre's head artist take most of its plays,
    # so a most-popular list was nearly as good as personal taste: not what real logs show.)
    genre_artists, genre_cdf = [], []
    for k in range(g):
        members = np.nonzero(artist_genre == k)[0]
        weights = 1.0 / np.arange(1, members.size + 1) ** spec.zipf_exponent
        weights = weights[rng.permutation(members.size)]
        genre_artists.append(members)
        genre_cdf.append(np.cumsum(weights) / weights.sum())
    track_count = 1 + rng.poisson(spec.mean_tracks_per_artist - 1, a)
    track_offset = np.concatenate([[0], np.cumsum(track_count)[:-1]])
    duration_s = np.clip(rng.lognormal(np.log(210), 0.3, int(track_count.sum())), 45, 900)
    # Mixed taste: a sparse Dirichlet gives each user one to three dominant genres, tilted
    # towards the genres with more listeners.
    mix = rng.dirichlet(np.full(g, spec.taste_concentration), u)
    mix = mix / np.arange(1, g + 1) ** spec.genre_size_exponent
    mix = mix / mix.sum(axis=1, keepdims=True)
    mix = 0.97 * mix + 0.03 / g  # a little of everything: exploration
    user_genre_cdf = np.cumsum(mix, axis=1)
    parts = {
        "user_genre_cdf": user_genre_cdf,
        "genre_cdf": genre_cdf,
        "genre_artists": genre_artists,
    }
    fav_users = np.repeat(np.arange(u), spec.favourites_per_user)
    user_fav = sample_artists(parts, fav_users, rng).reshape(u, spec.favourites_per_user)
    return World(
        spec=spec,
        artist_genre=artist_genre,
        artist_names=_names(rng, a),
        genre_artists=genre_artists,
        genre_cdf=genre_cdf,
        track_offset=track_offset,
        track_count=track_count,
        track_duration_ms=(duration_s * 1000).astype(np.int64),
        user_genre_cdf=user_genre_cdf,
        user_activity=rng.lognormal(0.0, 0.8, u),
        user_fav=user_fav,
        user_fav_prob=rng.beta(4, 5, u),
        user_platform=rng.integers(0, 5, u),
    )


def world_parts(world: World) -> dict[str, Any]:
    return {
        "user_genre_cdf": world.user_genre_cdf,
        "genre_cdf": world.genre_cdf,
        "genre_artists": world.genre_artists,
    }
