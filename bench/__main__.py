"""Run every benchmark: `python -m bench` (or `make bench`), then print the results table.

The table (Markdown, with the machine and commit) is what docs/performance.md records.
Exit status: 0 when every figure with a target met it.

Each benchmark uses its own PostgreSQL database on 127.0.0.1 (created if missing; see each
module's docstring): BENCH_DATABASE_URL for the API, sweep and duty-queue benchmarks,
BENCH_FLOWS_DATABASE_URL and BENCH_FLOWS_REFERRALS (1,000,000) for flows and the PDFs.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

from bench import api, flags, flows, report, sweep

BENCHMARKS = (("API throughput and latency", api.main), ("sweep", sweep.main),
              ("duty queue", flags.main), ("flows and PDFs", flows.run))


def main() -> int:
    started = time.monotonic()
    failed = []
    for name, benchmark in BENCHMARKS:
        print(f"\n== {name} ==", flush=True)
        try:
            benchmark()
        except (Exception, SystemExit):  # noqa: BLE001 -- one failing must not hide the others
            traceback.print_exc()
            failed.append(name)
    minutes = (time.monotonic() - started) / 60
    print(f"\n== results (commit {report.git_commit()}, {minutes:.0f} min) ==")
    print(report.machine(os.environ.get("BENCH_DATABASE_URL")
                         or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    print()
    print(report.table())
    missed = [r.name for r in report.RESULTS if r.met is False]
    for name in failed:
        print(f"benchmark failed to run: {name}", file=sys.stderr)
    return 1 if failed or missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
