"""`make bench` fails when a target is missed, after running every bench, and says which."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.bench.targets import Targets
from tests.conftest import ROOT

BENCH = '''import sys
sys.path.insert(0, {root!r})
from tests.bench.targets import Targets
targets = Targets({name!r})
print({name!r}, "latency", targets.at_most("latency p99", {value}, 20, "ms"))
sys.exit(targets.exit_code())
'''


def _bench(tmp_path: Path, name: str, value: float) -> Path:
    path = tmp_path / f"bench_{name}.py"
    path.write_text(BENCH.format(root=str(ROOT), name=name, value=value))
    return path


def test_a_missed_target_is_named_and_fails_the_bench(capsys) -> None:  # type: ignore[no-untyped-def]
    targets = Targets("bench_x")
    assert targets.at_least("throughput", 2500, 2000, "frames/s") == "ok"
    assert targets.at_most("latency", 25.0, 20, "ms") == "MISSED"
    assert targets.exit_code() == 1
    assert capsys.readouterr().err == "bench_x: target missed: latency: 25 ms > 20 ms\n"
    assert Targets("bench_y").exit_code() == 0


def test_make_bench_runs_every_bench_then_fails_naming_the_misses(tmp_path: Path) -> None:
    benches = [_bench(tmp_path, "slow", 35), _bench(tmp_path, "fast", 3),
               _bench(tmp_path, "late", 21)]
    run = subprocess.run(["make", "-s", "-o", "setup", "bench", f"PY={sys.executable}",
                          "BENCHES=" + " ".join(map(str, benches))],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert [line.split()[0] for line in run.stdout.splitlines() if "latency" in line] == [
        "slow", "fast", "late"], "every bench runs, also after a miss"
    assert "slow: target missed: latency p99: 35 ms > 20 ms" in run.stderr
    assert f"make bench: target missed in: {benches[0]} {benches[2]}" in run.stderr


def test_every_bench_returns_its_verdict() -> None:
    for path in sorted((ROOT / "tests" / "bench").glob("bench_*.py")):
        assert "return targets.exit_code()" in path.read_text(), f"{path.name} ignores misses"
