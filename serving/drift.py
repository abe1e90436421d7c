"""Population stability of scores and features over a sliding window, from aggregated bin counts.

PSI = Σ (live − ref) · ln(live / ref), proportions floored at 1e-4. The window is the difference between the
aggregated counts now and the newest snapshot at least ``window`` old (before one exists: everything since
start). Snapshots are kept in a small JSON file in the multi-process metrics folder, shared by all workers
under ``flock``, so whichever worker answers a scrape reports the same PSI; without a folder (one in-process
server) they are kept in memory.
"""

from __future__ import annotations

import fcntl
import json
import math
import time
from pathlib import Path

import numpy as np

PSI_FLOOR = 1e-4
SNAPSHOT_FILE = "drift-snapshots.json"


def psi(counts: np.ndarray, reference: np.ndarray) -> float:
    """Population stability index of live bin ``counts`` against reference proportions (NaN if no rows)."""
    total = counts.sum()
    if total <= 0:
        return math.nan
    live = np.maximum(counts / total, PSI_FLOOR)
    ref = np.maximum(reference, PSI_FLOOR)
    return float(np.sum((live - ref) * np.log(live / ref)))


class DriftWindow:
    """The counts at the start of a sliding window of ``seconds``, from snapshots taken at each scrape."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self.started = time.time()
        self._snapshots: list[list] = []  # used when there is no shared folder

    def baseline(self, current: np.ndarray, folder: Path | None) -> tuple[np.ndarray, float]:
        """The aggregated counts at the start of the window, and the window's actual span in seconds;
        records ``current`` as a snapshot (at most one per 1/30 of the window)."""
        now = time.time()
        if folder is None:
            self._snapshots, baseline, span = self._update(self._snapshots, current, now)
            return baseline, span
        with open(folder / SNAPSHOT_FILE, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            text = fh.read()
            try:
                snapshots = json.loads(text) if text else []
            except json.JSONDecodeError:
                snapshots = []
            kept, baseline, span = self._update(snapshots, current, now)
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(kept))
        return baseline, span

    def _update(
        self, snapshots: list[list], current: np.ndarray, now: float
    ) -> tuple[list[list], np.ndarray, float]:
        interval = max(self.seconds / 30, 1.0)
        snapshots = [s for s in snapshots if len(s[1]) == len(current)]
        if snapshots and np.any(current < np.asarray(snapshots[-1][1])):
            snapshots = []  # counters went backwards: a restart with a stale file; start over
        if not snapshots or now - snapshots[-1][0] >= interval:
            snapshots.append([now, current.tolist()])
        old_enough = [s for s in snapshots if now - s[0] >= self.seconds]
        if old_enough:
            start, counts = old_enough[-1]
            baseline = np.asarray(counts)
        else:
            start, baseline = self.started, np.zeros_like(current)
        # Keep the newest snapshot older than the window (the next baseline) and everything after it.
        keep_from = max(0, len(old_enough) - 1)
        return snapshots[keep_from:], baseline, now - start
