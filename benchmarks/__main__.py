"""Run the benchmark: ``python -m benchmarks [--quick | --full] [--json PATH] ...``.

Everything it starts listens on 127.0.0.1 and is stopped at the end; every
loop is bounded in count and time. The report (markdown) goes to stdout,
progress to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import inprocess, lookup, overhttp, redisdb, report, traffic
from .common import STORES, Processes, log, machine

PARTS = ("inprocess", "http", "traffic", "lookup")
PRESETS: dict[str, dict[str, Any]] = {
    "full": {
        "inprocess": inprocess.Plan(rounds=9, seconds=0.5, max_ops=50_000, warmup=0.3),
        "http": overhttp.Plan(rounds=7, seconds=2, connections=16, warmup=1),
        "traffic": traffic.Plan(requests=1000, seconds=120.0),
        "lookup": lookup.Plan(sizes=(1000, 100_000, 1_000_000), rounds=7, gets=2000, seconds=1.0),
    },
    "quick": {
        "inprocess": inprocess.Plan(rounds=3, seconds=0.3, max_ops=20_000, warmup=0.1),
        "http": overhttp.Plan(rounds=2, seconds=1, connections=16, warmup=0),
        "traffic": traffic.Plan(requests=1000, seconds=30.0),
        "lookup": lookup.Plan(sizes=(1000, 10_000), rounds=3, gets=500, seconds=0.5),
    },
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="few short rounds, small sizes")
    mode.add_argument("--full", action="store_true", help="the default: figures to quote")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH")
    parser.add_argument("--sizes", help="lookup sizes, e.g. 1000,100000 (full: ...,1000000)")
    parser.add_argument("--stores", default="redis,sqlite", help="redis,sqlite (default both)")
    parser.add_argument("--only", default=",".join(PARTS), help="some of " + ",".join(PARTS))
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, dbs)")
    parser.add_argument(
        "--server",
        choices=overhttp.SERVERS,
        default="granian",
        help="the HTTP server of every app (granian: what coatcheck serve runs)",
    )
    args = parser.parse_args(argv)
    args.stores = [s for s in args.stores.split(",") if s]
    args.only = [p for p in args.only.split(",") if p]
    if not args.stores or not set(args.stores) <= set(STORES):
        parser.error(f"--stores takes some of {','.join(STORES)}")
    if not args.only or not set(args.only) <= set(PARTS):
        parser.error(f"--only takes some of {','.join(PARTS)}")
    if args.sizes:
        try:
            args.sizes = tuple(sorted({int(s.replace("_", "")) for s in args.sizes.split(",")}))
        except ValueError:
            parser.error("--sizes takes whole numbers, e.g. 1000,100000")
        if not all(100 <= s <= 2_000_000 for s in args.sizes):
            parser.error("--sizes must be between 100 and 2,000,000")
    return args


class Run:
    """One run: its settings, work folder, Redis dbs, processes and results."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.mode = "quick" if args.quick else "full"
        self.preset = dict(PRESETS[self.mode])
        if args.sizes:
            self.preset["lookup"] = dataclasses.replace(self.preset["lookup"], sizes=args.sizes)
        self.preset["http"] = dataclasses.replace(self.preset["http"], server=args.server)
        self.secret, self.seed = secrets.token_hex(32), secrets.token_hex(4)
        self.procs = Processes()
        self.started = time.monotonic()
        self.results: dict[str, Any] = {"mode": self.mode, "machine": machine(), "notes": []}
        self.results["settings"] = {k: dataclasses.asdict(v) for k, v in self.preset.items()}
        self.work = Path(tempfile.mkdtemp(prefix="coatcheck-bench-"))
        self.dbs: dict[int, redisdb.OwnDb] = {}
        self.no_redis = redisdb.available() if "redis" in args.stores else "not requested"
        if self.no_redis is None:
            self.dbs = {db: redisdb.OwnDb(db) for db in (redisdb.DB_COATCHECK, redisdb.DB_ANCHOR)}
            info = self.dbs[redisdb.DB_COATCHECK].client.info("server")
            self.results["redis"] = (
                f"{info.get('redis_version', '?')} at {redisdb.HOST}:{redisdb.PORT}, "
                f"db {redisdb.DB_COATCHECK} (coatcheck), db {redisdb.DB_ANCHOR} (anchor)"
            )
        else:
            self.results["redis"] = f"not used: {self.no_redis}"

    def measure(self, part: str, store: str, base: Path) -> Any:
        """Run one part of the benchmark on one store."""
        p = self.preset
        if part == "inprocess":
            return inprocess.measure(store, base, self.secret, p["inprocess"])
        if part == "http":
            return overhttp.measure(store, base, self.secret, p["http"], self.procs)
        if part == "traffic":
            return traffic.measure(store, base, self.secret, p["traffic"], self.dbs)
        urls = lookup.urls(store, base, f"ccbench-{self.seed}:")
        return lookup.measure(store, urls, p["lookup"], self.seed)

    def run(self) -> None:
        """Run every part asked for, on every store, cleaning up after each."""
        log(f"{self.mode} run, work folder {self.work}")
        for part in self.args.only:
            self.results[part] = {}
            for store in self.args.stores:
                if store == "redis" and self.no_redis is not None:
                    self.results[part][store] = {"error": f"skipped: {self.no_redis}"}
                    continue
                base = self.work / f"{part}-{store}"
                base.mkdir()
                log(f"{part} on {store} ...")
                try:
                    self.results[part][store] = self.measure(part, store, base)
                except Exception as exc:  # report it; the other parts still run
                    self.results[part][store] = {"error": f"{type(exc).__name__}: {exc}"}
                    log(f"{part}/{store} failed: {type(exc).__name__}: {exc}")
                finally:
                    self.clean()

    def clean(self) -> None:
        """Stop what this run started and delete the Redis keys it added."""
        self.procs.stop_all()
        for db in self.dbs.values():
            db.clean()

    def close(self) -> None:
        """Clean up for good: processes, Redis keys and connections, the work folder."""
        self.clean()
        for db in self.dbs.values():
            db.close()
        if self.args.keep:
            log(f"kept {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    def report(self) -> str:
        """Return the markdown report (and write the JSON file if asked to)."""
        self.results["elapsed_s"] = time.monotonic() - self.started
        if self.args.json:
            Path(self.args.json).write_text(json.dumps(self.results, indent=2, default=str))
            log(f"wrote {self.args.json}")
        return report.render(self.results)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that cleanup runs
    run = Run(parse_args(argv))
    try:
        run.run()
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        run.close()
    print(run.report(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
