"""First use of a catalogued endpoint (issue 16 target: its validator built in <= 20 ms):
reading its entry from the catalogue, building the pydantic model from its input schema, and
validating a first body, over the whole catalogue (or a sample with --smoke).

Run: python bench/bench_generic.py [--smoke]
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402

from mock_server.endpoints.catalog import Catalog  # noqa: E402
from mock_server.endpoints.generic import GenericEndpoint  # noqa: E402
from mock_server.endpoints.generic.sample import sample_input  # noqa: E402

TARGET_MS = 20.0


def first_use(catalog: Catalog, endpoint_id: str) -> tuple[float, float, float]:
    """ms to read the entry, to build the validator, and to validate a first body."""
    started = time.perf_counter()
    entry = catalog.get(endpoint_id)
    read = time.perf_counter()
    endpoint = GenericEndpoint(entry)
    endpoint._adapter  # noqa: B018 - builds the model and its validator
    built = time.perf_counter()
    endpoint.parse(orjson.dumps(sample_input(entry.input_schema)))
    parsed = time.perf_counter()
    return (read - started) * 1000, (built - read) * 1000, (parsed - built) * 1000


def main(smoke: bool) -> None:
    catalog = Catalog(None)
    ids = catalog.ids()
    if smoke:
        ids = ids[:: max(1, len(ids) // 40)]
    warm = first_use(catalog, ids[0])  # the very first also pays pydantic's own imports
    rows = [first_use(catalog, endpoint_id) for endpoint_id in ids[1:]]
    builds = sorted(r[1] for r in rows)
    p95 = builds[int(len(builds) * 0.95)]
    print(f"{len(rows)} endpoints (+1 warm-up: read {warm[0]:.1f} ms, build {warm[1]:.1f} ms)")
    print(f"{'step':>16} | {'median ms':>9} | {'p95 ms':>7} | {'max ms':>7}")
    print("-" * 48)
    for name, index in (("read entry", 0), ("build validator", 1), ("first parse", 2)):
        values = sorted(r[index] for r in rows)
        print(f"{name:>16} | {statistics.median(values):>9.2f} | {values[int(len(values) * 0.95)]:>7.2f} | {values[-1]:>7.2f}")
    print(f"\nvalidator build p95 {p95:.2f} ms: target <= {TARGET_MS:.0f} ms {'met' if p95 <= TARGET_MS else 'NOT met'}")


if __name__ == "__main__":
    main("--smoke" in sys.argv[1:])
