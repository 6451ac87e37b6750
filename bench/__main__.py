"""Run every benchmark: `python -m bench` (or `make bench`)."""

from __future__ import annotations

from bench import api, flags, flows, sweep

BENCHMARKS = (api.main, sweep.main, flags.main, lambda: flows.main() or 0)


def main() -> int:
    status = 0
    for benchmark in BENCHMARKS:
        status = max(status, benchmark())
    return status


if __name__ == "__main__":
    raise SystemExit(main())
