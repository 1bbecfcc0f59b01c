"""Replay a captured radar byte stream through the radar chain: parser -> plots -> tracker.

Field engineers run it (through `edgenode replay --radar FILE --radar-model MODEL [--json]`) on
what `edgenode record` captured; the project uses it to score the chain. A capture holds bytes
only, so frame times are rebuilt from frame numbers at the nominal frame period, counted from
the first frame (seconds from start). The pose is a default one (heading 0, boresight on the
mast heading, 3 m mast, at 0 N 0 E) unless given.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, TextIO

from edgenode.detect.plots import RadarPlotter
from edgenode.detect.tracker import Tracker
from hal.radar import RadarFrame, make_parser

log = logging.getLogger(__name__)

CHUNK_BYTES = 4096  # read like a serial port would deliver it, not as one blob


def replay_radar(path: Path, model: str, as_json: bool, out: TextIO, *,
                 frame_period_s: float = 0.1, mast_heading_deg: float = 0.0,
                 boresight_azimuth_deg: float = 0.0, mount_height_m: float = 3.0,
                 latitude_deg: float = 0.0, longitude_deg: float = 0.0,
                 altitude_m: float = 0.0) -> int:
    """Run the radar chain over the capture at `path`; one line per decoded frame on `out`
    (JSON objects with `as_json`), then a summary line. 0 on success, 1 if the file cannot be
    read; an unknown model raises ValueError (from make_parser)."""
    parser: Any = make_parser(model)
    plotter = RadarPlotter(boresight_azimuth_deg=boresight_azimuth_deg,
                           mount_height_m=mount_height_m, mast_heading_deg=mast_heading_deg)
    tracker = Tracker(latitude_deg=latitude_deg, longitude_deg=longitude_deg,
                      altitude_m=altitude_m, mast_heading_deg=mast_heading_deg,
                      mount_height_m=mount_height_m)
    first: int | None = None
    plots_total = 0
    confirmed: set[str] = set()
    try:
        stream = path.open("rb")
    except OSError as exc:
        log.error("radar replay: cannot read %s: %s", path, exc.strerror or exc)
        return 1
    with stream:
        while chunk := stream.read(CHUNK_BYTES):
            frames: list[RadarFrame] = parser.feed(chunk, 0.0)
            for frame in frames:
                if first is None:
                    first = frame.frame_number
                t = (frame.frame_number - first) * frame_period_s
                frame.t_capture = t
                plots = plotter.process(frame)
                events = tracker.update(t, plots, [])
                plots_total += len(plots)
                confirmed.update(e["object_id"] for e in events if e["type"] == "new")
                _write_frame(out, as_json, frame, t, plots, events)
    summary = {"frames": parser.frames, "bytes_skipped": parser.bytes_skipped,
               "frames_rejected": parser.frames_rejected,
               "frame_gaps": getattr(parser, "frame_gaps", 0),
               "plots": plots_total, "tracks_confirmed": len(confirmed)}
    if as_json:
        out.write(json.dumps({"summary": summary}) + "\n")
    else:
        out.write("summary: " + ", ".join(f"{k} {v}" for k, v in summary.items()) + "\n")
    if parser.frames == 0:
        log.error("radar replay: no %s frame in %s (%d bytes): is it a capture of that radar's "
                  "data port? choose the model with --radar-model", model, path,
                  path.stat().st_size)
        return 1
    return 0


def _write_frame(out: TextIO, as_json: bool, frame: RadarFrame, t: float, plots: list,
                 events: list[dict[str, Any]]) -> None:
    if as_json:
        out.write(json.dumps({"frame": frame.frame_number, "t": round(t, 3),
                              "points": len(frame.points),
                              "plots": [p.to_dict() for p in plots],
                              "events": events}) + "\n")
        return
    line = (f"frame {frame.frame_number} t {t:.2f} s: {len(frame.points)} points, "
            f"{len(plots)} plots")
    for event in events:
        after = event["after"]
        label = after["classification"][0]
        rng = after["range_m"]
        line += (f"; {event['type']} {event['object_id']} {after['status']} "
                 f"az {after['azimuth_deg']['value']:.1f} deg"
                 + (f" range {rng['value']:.1f} m" if rng else "")
                 + f" {label['type']} {label['confidence']:.2f}")
    out.write(line + "\n")
