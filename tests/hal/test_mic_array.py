"""Microphone geometries (shipped and from files) and the channel map of a MicArray."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from hal.acoustic import GeometryError, MicArray, MicArrayError, MicGeometry, load_geometry
from hal.ports.audio import AudioBlock


def block_of_channel_numbers(channels: int, frames: int = 8) -> AudioBlock:
    """Channel c holds the value c / 100 in every frame, so a column shows where it came from."""
    samples = np.tile(np.arange(channels, dtype=np.float32) / 100, (frames, 1))
    return AudioBlock(samples=samples, sample_rate_hz=48000, t_capture=0.0, index=0)


def pairwise(positions: np.ndarray) -> np.ndarray:
    return np.linalg.norm(positions[:, None] - positions[None, :], axis=-1)


@pytest.mark.parametrize(("name", "mics"), [("uma16", 16), ("uma8", 7), ("respeaker4", 4)])
def test_shipped_geometries_are_centred_flat_arrays(name, mics):
    geometry = load_geometry(name)
    assert geometry.name == name
    assert geometry.positions_m.shape == (mics, 3)
    np.testing.assert_allclose(geometry.positions_m.mean(axis=0), 0.0, atol=1e-9)
    assert np.all(geometry.positions_m[:, 2] == 0.0)


def test_uma16_is_a_42mm_grid_numbered_as_the_board_is():
    geometry = load_geometry("uma16")
    positions = geometry.positions_m
    for axis in (0, 1):
        np.testing.assert_allclose(np.unique(positions[:, axis]), [-0.063, -0.021, 0.021, 0.063])
    distances = pairwise(positions) + np.eye(16)
    np.testing.assert_allclose(distances.min(axis=1), 0.042, atol=1e-9)
    # Not row-major: MIC1 and MIC2 share a row, MIC2 -> MIC8 runs up the left column, MIC9 is
    # the opposite front corner (acoular minidsp_uma-16.xml, mounted with MIC8 front-left).
    mic = {n + 1: tuple(positions[n, :2]) for n in range(16)}
    assert mic[8] == pytest.approx((0.063, 0.063))
    assert mic[9] == pytest.approx((0.063, -0.063))
    assert mic[15] == pytest.approx((-0.063, -0.063))
    assert mic[2] == pytest.approx((-0.063, 0.063))
    assert mic[1] == pytest.approx((-0.063, 0.021))
    assert geometry.aperture_m() == pytest.approx(0.126 * np.sqrt(2))


def test_uma8_has_a_centre_mic_and_six_on_a_43mm_circle():
    positions = load_geometry("uma8").positions_m
    np.testing.assert_allclose(positions[0], 0.0)
    ring = positions[1:, :2]
    np.testing.assert_allclose(np.hypot(ring[:, 0], ring[:, 1]), 0.043, atol=1e-4)
    bearings = np.degrees(np.arctan2(ring[:, 1], ring[:, 0]))
    np.testing.assert_allclose(np.diff(np.unwrap(np.radians(bearings))), -np.pi / 3, atol=0.01)


def test_respeaker4_is_a_square_with_81mm_between_opposite_mics():
    positions = load_geometry("respeaker4").positions_m
    d = pairwise(positions)
    assert d[0, 2] == pytest.approx(0.08127) and d[1, 3] == pytest.approx(0.08127)
    sides = [d[i, (i + 1) % 4] for i in range(4)]
    np.testing.assert_allclose(sides, 0.08127 / np.sqrt(2))


def test_max_delay_is_the_aperture_over_the_speed_of_sound():
    array = MicArray(load_geometry("respeaker4"))
    assert array.aperture_m() == pytest.approx(0.08127)
    assert array.max_delay_s(343.0) == pytest.approx(0.08127 / 343.0)
    assert MicArray(MicGeometry("one", np.zeros((1, 3)))).aperture_m() == 0.0


def write_geometry(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "mast.toml"
    path.write_text(body)
    return path


def test_a_geometry_file_loads_by_path(tmp_path):
    path = write_geometry(tmp_path, 'name = "pair"\npositions_m = [[0.1, 0, 0], [-0.1, 0, 0]]\n')
    geometry = load_geometry(str(path))
    assert geometry.name == "pair"
    np.testing.assert_array_equal(geometry.positions_m, [[0.1, 0, 0], [-0.1, 0, 0]])


@pytest.mark.parametrize(("body", "names"), [
    ('name = "x"\npositions_m = [[0, 0, 0], [0.1, nan, 0]]', "positions_m[1]"),
    ('name = "x"\npositions_m = [[0, 0, 0], [0.1, inf, 0]]', "not a finite number"),
    ('name = "x"\npositions_m = [[0, 0, 0], [0.1, 0]]', "positions_m[1]"),
    ('name = "x"\npositions_m = [[0, 0, 0], [0.1, "a", 0]]', "positions_m[1]"),
    ('name = "x"\npositions_m = []', "at least one"),
    ('name = "x"\npositions_m = [[0.1, 0, 0], [0, 0, 0], [0.1, 0, 0]]',
     "positions_m[0]"),
    ('name = "x"\npositions_m = [[42, 0, 0], [-42, 0, 0]]', "metres"),
    ('name = "x"\npositions_m = [[0, 0, 0]]\nspacing_mm = 42', "spacing_mm"),
    ('positions_m = [[0, 0, 0]]', "name"),
    ('name = "x"\npositions_m = [[0, 0, 0]', "cannot read"),
])
def test_bad_geometry_files_are_errors_naming_file_and_entry(tmp_path, body, names):
    path = write_geometry(tmp_path, body)
    with pytest.raises(GeometryError) as caught:
        load_geometry(path)
    message = str(caught.value)
    assert str(path) in message
    assert names in message


def test_two_mics_at_one_place_names_both_entries(tmp_path):
    path = write_geometry(tmp_path, 'name = "x"\npositions_m = [[0.1, 0, 0], [0, 0, 0],'
                                    ' [0.1, 0, 0.0002]]')
    with pytest.raises(GeometryError, match=r"positions_m\[0\].*positions_m\[2\].*same place"):
        load_geometry(path)


def test_unknown_geometry_name_lists_the_shipped_ones():
    with pytest.raises(GeometryError, match=r"'uma32'.*respeaker4, uma16, uma8"):
        load_geometry("uma32")


def test_identity_map_keeps_capture_order():
    array = MicArray(load_geometry("respeaker4"))
    arranged = array.arrange(block_of_channel_numbers(4))
    np.testing.assert_allclose(arranged[0], [0.0, 0.01, 0.02, 0.03])


def test_identity_map_takes_the_first_channels_of_a_wider_capture():
    # The UMA-8 sends 8 channels; the 8th carries no microphone.
    arranged = MicArray(load_geometry("uma8"), channels=8).arrange(block_of_channel_numbers(8))
    assert arranged.shape == (8, 7)
    np.testing.assert_allclose(arranged[0], np.arange(7) / 100)


def test_channel_map_puts_each_capture_channel_under_its_microphone():
    array = MicArray(load_geometry("respeaker4"), [5, 2, 0, 3], channels=6)
    arranged = array.arrange(block_of_channel_numbers(6))
    assert arranged.shape == (8, 4)
    np.testing.assert_allclose(arranged[0], [0.05, 0.02, 0.0, 0.03])


def test_channel_map_longer_than_the_capture_is_an_error_naming_it():
    array = MicArray(load_geometry("uma16"), list(range(16)))
    with pytest.raises(MicArrayError, match=r"channel_map \[0, 1, .*15\].*16 channels.*only 8"):
        array.arrange(block_of_channel_numbers(8))
    with pytest.raises(MicArrayError, match=r"channel_map .*only 8"):
        MicArray(load_geometry("uma16"), channels=8)


@pytest.mark.parametrize(("channel_map", "says"), [
    ([0, 1, 2], "3 entries"),
    ([0, 1, 2, 2], "channel 2 feeds more than one"),
    ([0, 1, 2, -1], "negative"),
    ([0, 1, 2, 9], "channel 9 does not exist"),
])
def test_bad_channel_maps_are_errors_saying_why(channel_map, says):
    with pytest.raises(MicArrayError, match=says):
        MicArray(load_geometry("respeaker4"), channel_map, channels=6)


def test_shipped_positions_are_distinct_by_more_than_a_capsule():
    for name in ("uma16", "uma8", "respeaker4"):
        positions = load_geometry(name).positions_m
        for a, b in itertools.combinations(range(len(positions)), 2):
            assert np.linalg.norm(positions[a] - positions[b]) > 0.02
