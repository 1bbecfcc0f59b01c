#!/usr/bin/env python3
"""A stand-in for `arecord -D DEV -c N -r RATE -f S16_LE|S32_LE -t raw`: a real process that
writes raw PCM of a known pattern to stdout, with the faults a real driver shows.

The pattern counts interleaved samples from 0 at the start of each run: sample k (frame
k // N, channel k % N) is the 16-bit value (k mod 65536) - 32768, left-justified in 32 bits
for S32_LE (as a 24-bit codec's samples arrive). Its own options come before arecord's:
  --frames F              frames to write, then exit 0 (default: endless)
  --chunk-max-bytes B     write in random chunks of 1..B bytes, cut anywhere (short reads)
  --realtime              pace the writes at RATE
  --stall-after-frames F  stop writing after F frames and hang (until killed)
  --stall-runs 1,3        stall only in these runs (counted in --runs-file)
  --runs-file PATH        append one line per start (tests count starts with it)
  --exit-after-frames F   exit with --exit-code after F frames
  --overrun-every-frames F  report "overrun!!!" on stderr like arecord, every F frames
  --fail MESSAGE          print MESSAGE on stderr and exit 1 at once (device busy, absent)
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

PERIOD_FRAMES = 256  # frames per write, like an ALSA period


def pcm(first_sample: int, count: int, sample_format: str) -> bytes:
    values = [((k % 65536) - 32768) for k in range(first_sample, first_sample + count)]
    if sample_format == "S32_LE":
        return b"".join((v << 16).to_bytes(4, "little", signed=True) for v in values)
    return b"".join(v.to_bytes(2, "little", signed=True) for v in values)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-D", dest="device", required=True)
    parser.add_argument("-c", dest="channels", type=int, required=True)
    parser.add_argument("-r", dest="rate", type=int, required=True)
    parser.add_argument("-f", dest="format", choices=["S16_LE", "S32_LE"], required=True)
    parser.add_argument("-t", dest="type", choices=["raw"], required=True)
    parser.add_argument("--frames", type=int, default=0)
    parser.add_argument("--chunk-max-bytes", type=int, default=0)
    parser.add_argument("--realtime", action="store_true")
    parser.add_argument("--stall-after-frames", type=int, default=-1)
    parser.add_argument("--stall-runs", default="")
    parser.add_argument("--runs-file", default="")
    parser.add_argument("--exit-after-frames", type=int, default=-1)
    parser.add_argument("--exit-code", type=int, default=1)
    parser.add_argument("--overrun-every-frames", type=int, default=0)
    parser.add_argument("--fail", default="")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    run = 1
    if args.runs_file:
        with open(args.runs_file, "a") as f:
            f.write(f"{os.getpid()}\n")
        with open(args.runs_file) as f:
            run = sum(1 for _ in f)
    if args.fail:
        print(f"arecord: main:850: {args.fail}", file=sys.stderr, flush=True)
        return 1
    stall_runs = {int(r) for r in args.stall_runs.split(",") if r}
    stall_at = args.stall_after_frames if (not stall_runs or run in stall_runs) else -1
    bits = 16 if args.format == "S16_LE" else 32
    print(f"Recording raw data 'stdin' : Signed {bits} bit Little Endian, Rate {args.rate} Hz,"
          f" Channels {args.channels}", file=sys.stderr, flush=True)

    rng = random.Random(args.seed + run)
    frame = 0
    pending = b""
    t0 = time.monotonic()
    out = sys.stdout.fileno()
    try:
        while args.frames <= 0 or frame < args.frames:
            if frame == stall_at:
                while True:  # a stuck driver: nothing more, ever
                    time.sleep(3600)
            if frame == args.exit_after_frames:
                return args.exit_code
            n = PERIOD_FRAMES
            for limit in (args.frames, stall_at, args.exit_after_frames):
                if limit > frame:
                    n = min(n, limit - frame)
            if args.realtime:
                delay = t0 + (frame + n) / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            pending += pcm(frame * args.channels, n * args.channels, args.format)
            every = args.overrun_every_frames
            if every and (frame + n) // every > frame // every:
                print("overrun!!! (at least 1.234 ms long)", file=sys.stderr, flush=True)
            frame += n
            while pending:
                size = len(pending)
                if args.chunk_max_bytes:
                    size = min(size, rng.randint(1, args.chunk_max_bytes))
                written = os.write(out, pending[:size])
                pending = pending[written:]
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
