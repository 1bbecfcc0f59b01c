"""Fuzz: random and mutated TI frames never raise, and every intact frame still decodes exactly.

The stream holds frames that are truncated, carry wrong lengths, have bits flipped, hold the
magic word inside their payload, or are followed by random garbage (with and without magic
words in it). The intact ones (untouched, magic-in-payload, garbage-after) must all come out,
bit for bit; the damaged ones may come out or not, but never take an intact neighbour along.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hal.radar.ti_mmwave import MAGIC, TiMmwaveParser, encode_frame

INTACT, TRUNCATED, WRONG_TOTAL, WRONG_TLV_LENGTH, BIT_FLIPS, MAGIC_IN_PAYLOAD, GARBAGE_AFTER, \
    MAGIC_GARBAGE_AFTER, PURE_GARBAGE = range(9)
KIND_WEIGHTS = np.array([40, 10, 6, 6, 10, 8, 8, 8, 4], dtype=np.float64)


def fuzz_stream(n_frames: int, seed: int) -> tuple[bytes, dict[int, np.ndarray], np.ndarray]:
    """(stream, intact frame number -> expected points, kind per frame)."""
    rng = np.random.default_rng(seed)
    kinds = rng.choice(len(KIND_WEIGHTS), n_frames, p=KIND_WEIGHTS / KIND_WEIGHTS.sum())
    counts = rng.integers(0, 12, n_frames)
    counts[kinds == MAGIC_IN_PAYLOAD] += 1  # somewhere to put the magic word
    starts = np.concatenate(([0], np.cumsum(counts)))
    xyzv = rng.normal(0.0, 20.0, (int(starts[-1]), 4)).astype(np.float32)
    side = rng.integers(0, 1000, (int(starts[-1]), 2)).astype(np.float32) / np.float32(10.0)
    all_points = np.hstack([xyzv, side])
    # every random draw the loop needs, drawn at once
    cut_at = rng.random(n_frames)
    wrong = rng.integers(0, 4096, n_frames)
    flips = rng.integers(1, 5, n_frames)
    flip_bits = rng.integers(0, 1 << 30, (n_frames, 4))
    garbage_len = rng.integers(1, 300, n_frames)
    garbage = rng.integers(0, 256, 300 * n_frames // 8 + 600, dtype=np.uint8).tobytes()
    magic_at = rng.random(n_frames)

    parts: list[bytes] = []
    expected: dict[int, np.ndarray] = {}
    g = 0
    for i in range(n_frames):
        kind = kinds[i]
        points = all_points[starts[i]:starts[i + 1]]
        packet = encode_frame(i, points)
        if kind == PURE_GARBAGE:
            g = (g + 977) % (len(garbage) - 300)
            parts.append(garbage[g:g + garbage_len[i]])
            continue
        if kind == TRUNCATED:
            packet = packet[:max(1, int(cut_at[i] * (len(packet) - 1)))]
        elif kind == WRONG_TOTAL:
            value = int(wrong[i]) if int(wrong[i]) != len(packet) else len(packet) + 32
            packet = packet[:12] + value.to_bytes(4, "little") + packet[16:]
        elif kind == WRONG_TLV_LENGTH:
            value = int(wrong[i]) if int(wrong[i]) != 16 * len(points) else 1
            packet = packet[:44] + value.to_bytes(4, "little") + packet[48:]
        elif kind == BIT_FLIPS:
            mutable = bytearray(packet)
            for bit in flip_bits[i, :flips[i]] % (8 * len(packet)):
                mutable[bit // 8] ^= 1 << (bit % 8)
            packet = bytes(mutable)
        elif kind == MAGIC_IN_PAYLOAD:
            at = 48 + int(magic_at[i] * (16 * len(points) - 8))
            packet = packet[:at] + MAGIC + packet[at + 8:]
            decoded = points.copy()
            decoded[:, :4] = np.frombuffer(packet, "<f4", 4 * len(points), 48).reshape(-1, 4)
            expected[i] = decoded
        else:
            expected[i] = points
        parts.append(packet)
        if kind in (GARBAGE_AFTER, MAGIC_GARBAGE_AFTER):
            g = (g + 1231) % (len(garbage) - 300)
            junk = garbage[g:g + garbage_len[i]]
            if kind == MAGIC_GARBAGE_AFTER:
                junk = junk[: len(junk) // 2] + MAGIC + junk[len(junk) // 2:]
            parts.append(junk)
    # a clean tail, so a candidate still waiting for bytes at the end gets judged
    tail_points = all_points[:4]
    parts += [encode_frame(n_frames + k, tail_points) for k in range(3)]
    return b"".join(parts), expected, kinds


def feed_in_random_chunks(stream: bytes, seed: int) -> tuple[list, TiMmwaveParser]:
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(rng.integers(1, 8192, len(stream) // 2000 + 10))
    cuts = np.concatenate(([0], cuts[cuts < len(stream)], [len(stream)]))
    parser = TiMmwaveParser()
    frames = []
    for a, b in itertools.pairwise(cuts):
        frames += parser.feed(stream[a:b], t=0.0)
    return frames, parser


def check(n_frames: int, seed: int) -> None:
    stream, expected, kinds = fuzz_stream(n_frames, seed)

    frames, parser = feed_in_random_chunks(stream, seed + 1)  # must not raise

    found = set()
    for frame in frames:
        want = expected.get(frame.frame_number)
        if want is not None and np.array_equal(frame.points, want):
            found.add(frame.frame_number)
    missing = sorted(set(expected) - found)
    around = [kinds[max(0, m - 1):m + 2].tolist() for m in missing[:5]]
    assert not missing, (f"{len(missing)} intact frames lost, first {missing[:5]} "
                         f"(kinds before/at/after: {around})")
    assert parser.frames_rejected > 0 and parser.bytes_skipped > 0
    assert parser.frames >= len(expected)
    assert all(f.points.dtype == np.float32 and f.points.shape[1] == 6 for f in frames)


def test_100k_random_and_mutated_frames_never_raise_and_intact_frames_survive() -> None:
    check(100_000, seed=20240601)


@pytest.mark.long
@pytest.mark.timeout(900)  # ~2 min on a loaded 2-core box; the suite default is 120 s
def test_a_million_random_and_mutated_frames() -> None:
    for seed in range(5):
        check(200_000, seed=seed * 7919)
