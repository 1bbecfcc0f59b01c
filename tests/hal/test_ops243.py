"""OPS243 JSON report lines -> RadarFrames along boresight; garbage counted, never raised."""

from __future__ import annotations

import contextlib
import os
import time
import tty

import numpy as np
import pytest

from hal.ports.serial import SerialPort
from hal.radar import make_parser
from hal.radar.ops243 import Ops243Parser


def test_speed_report_becomes_a_point_on_boresight_approaching_negative() -> None:
    (frame,) = Ops243Parser().feed(b'{"unit":"mps","speed":-1.5}\n{"speed":"2.25"}\n')[:1]
    assert frame.points.shape == (1, 6) and frame.points.dtype == np.float32
    x, y, z, doppler, snr, noise = frame.points[0]
    assert (x, y, z) == (0.0, 0.0, 0.0)
    assert doppler == pytest.approx(1.5)  # wire: negative = outbound -> receding, positive
    assert np.isnan(snr) and np.isnan(noise)


def test_inbound_speed_is_negative_doppler_in_any_unit() -> None:
    frames = Ops243Parser().feed(b'{"unit":"mph","speed":10}\n{"unit":"kmph","speed":36}\n'
                                 b'{"unit":"cmps","speed":"250"}\n')
    assert [round(float(f.points[0, 3]), 4) for f in frames] == [-4.4704, -10.0, -2.5]


def test_older_firmware_direction_field_sets_the_sign() -> None:
    frames = Ops243Parser().feed(b'{"speed":0.58, "direction":"inbound", "time":105}\n'
                                 b'{"speed":0.58, "direction":"outbound", "time":106}\n')
    assert [round(float(f.points[0, 3]), 2) for f in frames] == [-0.58, 0.58]


def test_range_report_puts_objects_at_their_range_with_unknown_speed() -> None:
    (frame,) = Ops243Parser().feed(b'{"unit":"m","range":[3.4, 12.0]}\n')
    assert frame.points[:, 1].tolist() == pytest.approx([3.4, 12.0])
    assert (frame.points[:, [0, 2]] == 0).all() and np.isnan(frame.points[:, 3]).all()


def test_range_in_feet_and_configured_default_unit() -> None:
    (feet,) = Ops243Parser().feed(b'{"unit":"ft","range":10}\n')
    (default,) = Ops243Parser(range_unit="cm").feed(b'{"range":250}\n')
    assert feet.points[0, 1] == pytest.approx(3.048)
    assert default.points[0, 1] == pytest.approx(2.5)


def test_several_objects_per_report_and_frame_numbers_count_up() -> None:
    frames = Ops243Parser().feed(b'{"magnitude":[120,80],"speed":[2.1,-0.4]}\r\n'
                                 b'{"speed":1}\r\n')
    assert [f.frame_number for f in frames] == [1, 2]
    assert frames[0].points[:, 3].tolist() == pytest.approx([-2.1, 0.4])


def test_garbage_lines_are_counted_never_raised() -> None:
    parser = Ops243Parser()
    frames = parser.feed(b'\xff\xfe garbage\n{"speed":\n[1,2]\n{"speed":"fast"}\n'
                         b'{"speed":NaN}\n{"speed":[1],"range":[1,2]}\n' + b"x" * 5000 +
                         b'\n{"Product":"OPS243"}\n{"speed":1.0}\n')
    assert len(frames) == 1
    assert parser.garbage == 7 and parser.replies == 1


def test_a_report_split_across_reads_comes_out_once_complete() -> None:
    parser = Ops243Parser()
    assert parser.feed(b'{"unit":"mps","sp') == []
    assert parser.feed(b'eed":3}', t=5.0) == []
    (frame,) = parser.feed(b"\n", t=6.0)
    assert frame.t_capture == 6.0


def test_unknown_configured_unit_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="speed_unit 'knots'"):
        Ops243Parser(speed_unit="knots")


def test_reports_through_a_pty_via_serial_port() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    parser = make_parser("ops243")
    assert isinstance(parser, Ops243Parser)
    frames = []
    try:
        with SerialPort(os.ttyname(slave), 19200, name="ops243") as port:
            port.open()
            for speed in (1, 2, 3):
                os.write(master, b'{"unit":"mps","speed":%d}\r\n' % speed)
            deadline = time.monotonic() + 3.0
            while len(frames) < 3 and time.monotonic() < deadline:
                frames += parser.feed(port.read())
    finally:
        with contextlib.suppress(OSError):
            os.close(master)
        os.close(slave)
    assert [float(f.points[0, 3]) for f in frames] == [-1.0, -2.0, -3.0]
