"""What machine a benchmark ran on, how loaded it was, and its goals' verdicts: shared by the benchmarks."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    """The processor's model name (Linux /proc/cpuinfo), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    """The machine's load average (1, 5 and 15 minutes): other work skews every timing."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def machine_line() -> str:
    """One line for the top of a report: the CPU, its cores and the load."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu_name()}, {cores} cores usable, {load_average()}"


class Goals:
    """A benchmark's goals: each printed as `met` or `MISS` when judged; the exit code is the number missed."""

    def __init__(self) -> None:
        self.judged: list[tuple[bool, str]] = []

    def check(self, met: bool, text: str) -> bool:
        self.judged.append((bool(met), text))
        print(f"  goal {'met ' if met else 'MISS'}  {text}", flush=True)
        return bool(met)

    @property
    def missed(self) -> list[str]:
        return [text for met, text in self.judged if not met]

    def exit_code(self) -> int:
        """Print the tally (and the load, which skews timings) and return the number of goals missed."""
        missed = self.missed
        print(f"\n{len(self.judged) - len(missed)} of {len(self.judged)} goal(s) met"
              + (f"; MISSED: {'; '.join(missed)}" if missed else "") + f" ({load_average()} at the end)")
        return min(len(missed), 125)
