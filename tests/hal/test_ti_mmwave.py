"""TI mmWave data-port parser: the real capture through a pty, round trips, bad input."""

from __future__ import annotations

import json
import os
import random
import threading
import time
import tty
from pathlib import Path

import numpy as np
import pytest

from hal.ports.serial import SerialPort
from hal.radar import RadarFrame, make_parser
from hal.radar.ti_mmwave import (
    MAGIC,
    FrameStats,
    TiMmwaveParser,
    encode_frame,
)

CAPTURE = "radar/xwr16xx_processed_stream_2020_06_23T14_48_29_159"


def random_points(rng: np.random.Generator, n: int) -> np.ndarray:
    points = np.empty((n, 6), dtype=np.float32)
    points[:, :4] = rng.normal(0.0, 10.0, (n, 4))
    # snr/noise travel as whole tenths of a dB: build them as the parser will give them back
    points[:, 4:] = rng.integers(0, 1200, (n, 2)).astype(np.float32) / np.float32(10.0)
    return points


def pipe_through_pty(chunks: list[bytes], expected_frames: int, *, timeout_s: float = 10.0,
                     pause_every: int = 7) -> tuple[list[RadarFrame], TiMmwaveParser]:
    """Write chunks into a pty master from a thread; read the slave through SerialPort."""
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)

    def writer() -> None:
        for i, chunk in enumerate(chunks):
            os.write(master, chunk)
            if i % pause_every == 0:
                time.sleep(0.001)  # let the reader see partial frames

    parser = TiMmwaveParser()
    frames: list[RadarFrame] = []
    port = SerialPort(path, 921600, name="radar-data", timeout_s=0.05)
    try:
        port.open()
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout_s
        while len(frames) < expected_frames and time.monotonic() < deadline:
            frames += parser.feed(port.read())
        thread.join(5)
        assert port.bytes_in == sum(map(len, chunks))
    finally:
        port.close()
        os.close(master)
        os.close(slave)
    return frames, parser


def random_chunks(data: bytes, rng: random.Random, largest: int = 700) -> list[bytes]:
    chunks, i = [], 0
    while i < len(data):
        size = rng.randint(1, largest)
        chunks.append(data[i:i + size])
        i += size
    return chunks


def test_real_capture_through_a_pty_decodes_to_the_reference(shared_data: Path) -> None:
    raw = (shared_data / f"{CAPTURE}.dat").read_bytes()
    lines = (shared_data / f"{CAPTURE}.ti_reference.jsonl").read_text().splitlines()
    reference = [json.loads(line) for line in lines]

    frames, parser = pipe_through_pty(random_chunks(raw, random.Random(3)), len(reference))

    assert [f.frame_number for f in frames] == list(range(104, 206))
    assert [f.frame_number for f in frames] == [r["frame_number"] for r in reference]
    for frame, ref in zip(frames, reference, strict=True):
        assert frame.points.dtype == np.float32 and frame.points.shape == (len(ref["points"]), 6)
        xyzv = np.array([[p["x"], p["y"], p["z"], p["v"]] for p in ref["points"]])
        # TI's parser printed float32 values with 6 decimals
        assert np.array_equal(np.round(frame.points[:, :4].astype(np.float64), 6), xyzv), \
            frame.frame_number
        tenths = np.array([[p["snr_0p1dB"], p["noise_0p1dB"]] for p in ref["points"]])
        assert np.array_equal(np.rint(frame.points[:, 4:] * 10.0), tenths), frame.frame_number
    assert parser.frames == 102
    assert parser.bytes_skipped == 0 and parser.frames_rejected == 0
    assert parser.frame_gaps == 0 and parser.unknown_versions == 0


def test_real_capture_packets_are_padded_to_32_bytes_and_parsed_whole(shared_data: Path) -> None:
    raw = (shared_data / f"{CAPTURE}.dat").read_bytes()
    reference = [json.loads(line) for line in
                 (shared_data / f"{CAPTURE}.ti_reference.jsonl").read_text().splitlines()]
    assert all(r["total_packet_len"] % 32 == 0 for r in reference)

    parser = TiMmwaveParser()
    first = reference[0]
    # all but the last padding byte of the first frame: nothing may come out yet
    assert parser.feed(raw[:first["total_packet_len"] - 1]) == []
    assert [f.frame_number for f in parser.feed(raw[first["total_packet_len"] - 1:])] == \
        list(range(104, 206))


def test_frames_written_to_a_pty_come_back_identical() -> None:
    rng = np.random.default_rng(11)
    sent = [RadarFrame(n, 0.0, random_points(rng, int(rng.integers(0, 80))))
            for n in range(500, 700)]
    stream = b"".join(encode_frame(f.frame_number, f.points, t_cpu_cycles=f.frame_number * 7)
                      for f in sent)

    frames, parser = pipe_through_pty(random_chunks(stream, random.Random(5), 3000), len(sent))

    assert frames == sent
    assert parser.bytes_skipped == 0 and parser.frames_rejected == 0 and parser.frame_gaps == 0


def test_frame_comes_out_only_with_its_last_byte_and_carries_that_time() -> None:
    packet = encode_frame(9, random_points(np.random.default_rng(1), 5))
    parser = TiMmwaveParser()
    for i in range(len(packet) - 1):
        assert parser.feed(packet[i:i + 1], t=1.0) == []
    (frame,) = parser.feed(packet[-1:], t=2.5)
    assert frame.frame_number == 9 and frame.t_capture == 2.5


def test_stats_tlv_is_kept_and_other_tlvs_are_skipped_by_length() -> None:
    points = random_points(np.random.default_rng(2), 3)
    stats = FrameStats(1200, 300, 40000, 12, 35, 8)
    packet = bytearray(encode_frame(4, points, stats=stats))
    # append an unknown TLV (type 2, range profile) and fix numTLVs / totalPacketLen
    body_end = len(packet) - (len(packet) - 40 - (8 + 48) - (8 + 12) - (8 + 24))
    extra = (2).to_bytes(4, "little") + (10).to_bytes(4, "little") + bytes(range(10))
    packet = packet[:body_end] + extra
    packet += bytes(-len(packet) % 32)
    packet[12:16] = len(packet).to_bytes(4, "little")
    packet[32:36] = (4).to_bytes(4, "little")

    (frame,) = TiMmwaveParser().feed(bytes(packet))

    assert frame.stats == stats
    assert np.array_equal(frame.points, points)


def test_points_without_side_info_have_nan_snr_and_noise() -> None:
    points = random_points(np.random.default_rng(3), 4)
    packet = bytearray(encode_frame(1, points))
    # keep only TLV 1: numTLVs = 1, padding after it
    cut = 40 + 8 + 4 * 16
    packet = packet[:cut] + bytes(-cut % 32)
    packet[12:16] = len(packet).to_bytes(4, "little")
    packet[32:36] = (1).to_bytes(4, "little")

    (frame,) = TiMmwaveParser().feed(bytes(packet))

    assert np.array_equal(frame.points[:, :4], points[:, :4])
    assert np.isnan(frame.points[:, 4:]).all()


def test_truncated_frame_is_rejected_and_the_next_one_decoded() -> None:
    rng = np.random.default_rng(4)
    first, second = encode_frame(1, random_points(rng, 20)), encode_frame(2, random_points(rng, 3))
    parser = TiMmwaveParser()

    frames = parser.feed(first[:200] + second)

    assert [f.frame_number for f in frames] == [2]
    assert parser.frames_rejected == 1 and parser.bytes_skipped == 200


@pytest.mark.parametrize("overlap", range(1, 8))
def test_frame_whose_length_eats_part_of_the_next_magic_word_is_rejected_at_any_read_split(
        overlap: int) -> None:
    # From the long fuzz (seed 0, frame 152660): a bit flip turned frame 152659's
    # totalPacketLen 160 into 164 (padding 28 < 32, so every length still agreed) and a read
    # ended 4 bytes into frame 152660's magic word. The damaged frame came out, carrying those
    # 4 bytes, and the intact one behind it was lost.
    rng = np.random.default_rng(9)
    damaged = bytearray(encode_frame(152659, random_points(rng, 4)))
    intact_points = random_points(rng, 5)
    intact = encode_frame(152660, intact_points)
    assert len(damaged) == len(intact) == 160
    damaged[12:16] = (160 + overlap).to_bytes(4, "little")
    stream = bytes(damaged) + intact

    for split in range(len(damaged), len(damaged) + len(MAGIC) + 1):
        parser = TiMmwaveParser()

        frames = parser.feed(stream[:split], t=0.0) + parser.feed(stream[split:], t=0.0)

        assert [f.frame_number for f in frames] == [152660], split
        assert np.array_equal(frames[0].points, intact_points), split
        assert parser.frames_rejected == 1 and parser.bytes_skipped == 160, split


@pytest.mark.parametrize("cut", range(1, 8))
def test_frame_cut_by_a_few_bytes_never_hides_the_next_frame_at_any_read_split(cut: int) -> None:
    rng = np.random.default_rng(10)
    first = encode_frame(1, random_points(rng, 4))[:-cut]  # its padding partly lost
    intact_points = random_points(rng, 5)
    stream = first + encode_frame(2, intact_points) + encode_frame(3, intact_points)

    for split in range(len(first) - 1, len(first) + len(MAGIC) + 1):
        parser = TiMmwaveParser()

        frames = parser.feed(stream[:split], t=0.0) + parser.feed(stream[split:], t=0.0)

        # frame 1 may come out only when the read ended inside frame 2's magic word, where a
        # cut frame cannot be told from an intact one; frames 2 and 3 always do, exactly
        assert [f.frame_number for f in frames if f.frame_number != 1] == [2, 3], split
        assert np.array_equal(frames[-2].points, intact_points), split
        emitted_first = frames[0].frame_number == 1
        assert emitted_first or parser.frames_rejected == 1, split
        assert parser.bytes_skipped == (0 if emitted_first else len(first)), split


def test_frame_ending_in_magic_like_bytes_comes_out_with_its_last_byte() -> None:
    # Real side info often ends in 0x02 (the high byte of a noise level near 55 dB), and packets
    # whose TLVs fill whole segments have no padding after it: such a frame is not held back.
    points = random_points(np.random.default_rng(12), 2)
    points[-1, 5] = 0x0201 / 10  # noise 513 tenths: the packet ends in 01 02 (02 = MAGIC[0])
    packet = encode_frame(7, points)
    assert len(packet) == 96 and packet[-1:] == MAGIC[:1]
    parser = TiMmwaveParser()

    (frame,) = parser.feed(packet, t=1.0)
    frames = parser.feed(packet[:3] + encode_frame(8, points), t=2.0)

    assert frame.frame_number == 7 and np.array_equal(frame.points, points)
    assert [f.frame_number for f in frames] == [8]
    assert parser.bytes_skipped == 3 and parser.frames_rejected == 0


def test_garbage_between_frames_is_skipped_and_counted() -> None:
    rng = np.random.default_rng(5)
    a, b = encode_frame(1, random_points(rng, 2)), encode_frame(2, random_points(rng, 2))
    parser = TiMmwaveParser()

    frames = parser.feed(b"\xff" * 13 + a + b"noise" + MAGIC[:5] + b + MAGIC[:3])

    assert [f.frame_number for f in frames] == [1, 2]
    assert parser.bytes_skipped == 13 + 5 + 5
    assert parser.frames_rejected == 0


def test_frame_number_gaps_are_counted() -> None:
    points = random_points(np.random.default_rng(6), 1)
    parser = TiMmwaveParser()
    parser.feed(b"".join(encode_frame(n, points) for n in (10, 11, 14, 15, 20)))
    assert parser.frame_gaps == 2 and parser.frames_missing == 2 + 4


def test_unknown_header_version_is_counted_not_decoded(caplog: pytest.LogCaptureFixture) -> None:
    points = random_points(np.random.default_rng(7), 2)
    old = encode_frame(1, points, version=0x02010004)
    parser = TiMmwaveParser()

    frames = parser.feed(old + old + encode_frame(2, points))

    assert [f.frame_number for f in frames] == [2]
    assert parser.unknown_versions == 2
    assert sum("not SDK 3.x" in r.getMessage() for r in caplog.records) == 1


def test_lengths_that_disagree_are_rejected() -> None:
    points = random_points(np.random.default_rng(8), 4)
    good = encode_frame(1, points)
    wrong_count = bytearray(good)
    wrong_count[28:32] = (5).to_bytes(4, "little")  # numDetectedObj 5, TLVs carry 4
    too_long = bytearray(good)
    too_long[12:16] = (len(good) + 64).to_bytes(4, "little")  # padding longer than a segment
    parser = TiMmwaveParser()

    frames = parser.feed(bytes(wrong_count) + bytes(too_long) + encode_frame(2, points))

    assert [f.frame_number for f in frames] == [2]
    assert parser.frames_rejected == 2


def test_make_parser_builds_this_parser() -> None:
    assert isinstance(make_parser("ti-mmwave"), TiMmwaveParser)
