"""The results table `make bench` ends with, and the machine it ran on.

Each benchmark calls `record(...)` for every figure it measures; `python -m bench` prints
them together after running them all, ready to paste into docs/performance.md.
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass

import sqlalchemy as sa


@dataclass(frozen=True)
class Result:
    name: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None  # None: a figure with no target (shown for context)


RESULTS: list[Result] = []


def record(name: str, value: float, unit: str, target: str = "", met: bool | None = None
           ) -> Result:
    result = Result(name, value, unit, target, met)
    RESULTS.append(result)
    return result


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return 0.0


def machine(database_url: str | None = None) -> str:
    """One line naming what the figures were measured on."""
    parts = [f"{os.cpu_count()} CPU ({_cpu_model()})", f"{_memory_gib():.0f} GiB RAM",
             f"Python {platform.python_version()}", platform.platform(terse=True)]
    if database_url:
        try:
            with sa.create_engine(database_url).connect() as connection:
                parts.append(connection.execute(sa.text("SELECT version()")).scalar().split(
                    ",")[0])
        except sa.exc.SQLAlchemyError:
            pass
    try:
        load = os.getloadavg()
        parts.append(f"load {load[0]:.1f} at the end")
    except OSError:
        pass
    return ", ".join(parts)


def _value(result: Result) -> str:
    if result.value >= 100:
        return f"{result.value:,.0f}"
    return f"{result.value:.3g}" if result.value < 10 else f"{result.value:.1f}"


def table(results: list[Result] | None = None) -> str:
    """The results as a Markdown table."""
    rows = ["| benchmark | figure | target | met |", "|---|---:|---|---|"]
    for result in results if results is not None else RESULTS:
        met = {True: "yes", False: "**no**", None: ""}[result.met]
        rows.append(f"| {result.name} | {_value(result)} {result.unit} | {result.target} "
                    f"| {met} |")
    return "\n".join(rows)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,  # noqa: S607
                              text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
