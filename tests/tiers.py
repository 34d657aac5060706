"""`make test`: the whole suite as two pytest processes running at once.

The integration tier spends most of its time waiting on calls that run in real time
(callers speak and bots answer at the speed of speech), so the unit and model tiers run
beside it instead of after it. The integration tier keeps its one shared cluster (fixed
ports) in one process; both processes share the trained test registry through
CALLFLEET_TEST_RUN_DIR (tests/conftest.py builds it once, under a file lock).

Each tier's output goes to a log file and is printed whole when that tier ends, so the two
never interleave; the exit status is the first failing tier's (0 when both pass).
Arguments are passed to both pytest runs (e.g. `-x`, `--durations=20`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Ray Train's test starts a Ray of its own (not the shared cluster): it runs in the short tier.
TIERS = {
    "integration": ["-m", "integration and not models"],
    "unit + models": ["-m", "not integration or models"],
}


def main(argv: list[str]) -> int:
    run_dir = Path(tempfile.mkdtemp(prefix="callfleet-tests-"))
    env = {**os.environ, "CALLFLEET_TEST_RUN_DIR": str(run_dir)}
    started = time.monotonic()
    running: dict[str, tuple[subprocess.Popen, Path]] = {}
    for name, selection in TIERS.items():
        log = run_dir / f"{name.replace(' + ', '-')}.log"
        with log.open("wb") as out:
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   *selection, *argv, "tests"]
            running[name] = (subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out,
                                              stderr=subprocess.STDOUT), log)
    print(f"running {', '.join(TIERS)} at once; logs in {run_dir}", flush=True)
    status = 0
    try:
        while running:
            for name, (proc, log) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[name]
                minutes = (time.monotonic() - started) / 60
                print(f"\n===== {name} tier: exit {proc.returncode} after {minutes:.1f} min =====",
                      flush=True)
                sys.stdout.write(log.read_text(errors="replace"))
                sys.stdout.flush()
                if proc.returncode and not status:
                    status = proc.returncode
            time.sleep(1)
    except KeyboardInterrupt:
        for proc, _ in running.values():
            proc.terminate()
        raise
    print(f"\nwhole suite: {(time.monotonic() - started) / 60:.1f} min, exit {status}", flush=True)
    if status == 0:
        shutil.rmtree(run_dir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
