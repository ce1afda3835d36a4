"""CPU time and memory of processes, read from /proc (Linux), without psutil.

CPU is utime + stime from /proc/<pid>/stat (in clock ticks, so 10 ms resolution at the usual 100 Hz);
memory is VmRSS (now) and VmHWM (peak) from /proc/<pid>/status. Threads are included (they share the pid's
counters); child processes are not. The Outpost process can be named with --outpost-pid or found as the
process listening on the --http-url port (via /proc/net/tcp{,6} socket inodes; needs permission to read
that process's fd table, so: the same user or root).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PROC = Path("/proc")
_LISTEN = "0A"


@dataclass(frozen=True)
class ProcSample:
    """One reading of one process."""

    at_s: float
    cpu_s: float
    rss_bytes: int
    hwm_bytes: int


def read_sample(pid: int, at_s: float, proc: Path = _PROC) -> ProcSample | None:
    """CPU seconds and memory of `pid` now (None if it is gone or unreadable)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
        status = (proc / str(pid) / "status").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu_s = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime: fields 14 and 15 of stat
    mem = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return ProcSample(at_s, cpu_s, _kib(mem.get("VmRSS")), _kib(mem.get("VmHWM")))


def _kib(value: str | None) -> int:
    return int(value.split()[0]) * 1024 if value else 0


def listening_pid(port: int, proc: Path = _PROC) -> int | None:
    """The pid of the process listening on TCP `port` (any address), or None."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state == _LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{inode}]")
    if not inodes:
        return None
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            for fd in (pid_dir / "fd").iterdir():
                if str(fd.readlink()) in inodes:
                    return int(pid_dir.name)
        except OSError:
            continue
    return None


class ProcWatch:
    """Samples named processes over a run; summarises CPU use (in cores) and memory."""

    def __init__(self, pids: dict[str, int], clock: Callable[[], float]) -> None:
        self.pids = pids
        self.clock = clock
        self.samples: dict[str, list[ProcSample]] = {name: [] for name in pids}

    def sample(self) -> None:
        """Take one reading of every process."""
        now_s = self.clock()
        for name, pid in self.pids.items():
            s = read_sample(pid, now_s)
            if s is not None:
                self.samples[name].append(s)

    def cpu_series(self, name: str, start_s: float, seconds: int) -> list[float | None]:
        """CPU use of `name` per run second, in % of one core (None where there are no two readings)."""
        out: list[float | None] = [None] * seconds
        readings = self.samples.get(name, [])
        for a, b in itertools.pairwise(readings):
            second = int(b.at_s - start_s)
            if 0 <= second < seconds and b.at_s > a.at_s:
                out[second] = round(100.0 * (b.cpu_s - a.cpu_s) / (b.at_s - a.at_s), 1)
        return out

    def summary(self) -> dict[str, Any]:
        """Per process: pid, CPU seconds, average cores busy, RSS at the end, sampled maximum, VmHWM."""
        out: dict[str, Any] = {}
        for name, pid in self.pids.items():
            readings = self.samples[name]
            if len(readings) < 2:
                out[name] = {"pid": pid, "available": False}
                continue
            first, last = readings[0], readings[-1]
            span_s = max(1e-9, last.at_s - first.at_s)
            cpu_s = last.cpu_s - first.cpu_s
            out[name] = {
                "pid": pid,
                "available": True,
                "cpu_s": round(cpu_s, 2),
                "cpu_cores_avg": round(cpu_s / span_s, 3),
                "rss_mb_end": round(last.rss_bytes / 2**20, 1),
                "rss_mb_max_sampled": round(max(r.rss_bytes for r in readings) / 2**20, 1),
                "rss_mb_hwm": round(last.hwm_bytes / 2**20, 1),  # the process's lifetime peak (VmHWM)
            }
        return out
