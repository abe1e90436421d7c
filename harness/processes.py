"""What ``/proc`` tells about the predictor's processes (Linux): shared by ``reliability/`` (the fuzz
monitor, the load sampler) and ``bench/`` (the CPU of a server's process group, through
:class:`harness.wrk.NoiseMeter`).

kserve runs ``--workers N > 1`` as a parent that spawns N workers (multiprocessing ``spawn``) plus
multiprocessing's resource tracker; with one worker it serves in the parent itself.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path
from typing import NamedTuple


class ProcStat(NamedTuple):
    ppid: int
    pgrp: int
    state: str
    cpu_seconds: float  # user + system
    rss_bytes: int


def proc_stat(pid: int) -> ProcStat | None:
    """The process's ``/proc/PID/stat`` fields we use, None if it is gone."""
    try:
        fields = (
            Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        )  # after "(comm)": state ppid pgrp
    except (OSError, IndexError):
        return None
    return ProcStat(
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        state=fields[0],
        cpu_seconds=(int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"),
        rss_bytes=int(fields[21]) * os.sysconf("SC_PAGE_SIZE"),
    )


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    found: list[int] = []
    with suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with suppress(OSError):
                found += [int(p) for p in (task / "children").read_text().split()]
    return found


def descendants(pid: int) -> list[int]:
    out, todo = [], children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        todo += children(child)
    return out


def group_pids(pgid: int) -> list[int]:
    """Live processes of process group ``pgid`` (zombies, dead but not yet reaped, left out)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat is not None and stat.pgrp == pgid and stat.state != "Z":
                pids.append(int(entry.name))
    return sorted(pids)


def group_cpu_seconds(pgid: int | None) -> float:
    """CPU seconds of every process in process group ``pgid`` (zombies included), plus the children they
    reaped; 0 for None."""
    if pgid is None:
        return 0.0
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # fields after "(comm)": state ppid pgrp ...
                total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def pss_bytes(pid: int) -> int:
    """Proportional set size (shared pages split between their users; 0 if unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def role(pid: int, parent: int) -> str:
    """``parent`` (the server process), ``worker``, ``resource_tracker``, ``other``, or ``?`` once gone."""
    if pid == parent:
        return "parent"
    line = cmdline(pid)
    if not line:
        return "?"
    if "resource_tracker" in line:
        return "resource_tracker"
    if "spawn_main" in line:
        return "worker"
    return "other"


def worker_pids(parent: int) -> list[int]:
    """kserve's worker processes; with one worker kserve serves in the parent itself."""
    return sorted(p for p in children(parent) if role(p, parent) == "worker") or [parent]
