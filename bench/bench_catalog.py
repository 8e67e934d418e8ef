"""What the endpoint catalogue costs: nothing at start, then the index once, then one member
per endpoint asked for (issue 16: "loading it costs nothing at start-up").

    python bench/bench_catalog.py            # 200 fresh catalogues, 50 entries each
    python bench/bench_catalog.py --smoke    # a few rounds: proves the bench still runs (CI)

Each round makes a fresh ``Catalog`` (so every figure includes the cold read of the archive,
in a warm process and OS cache) and times: construction, the first ``ids()`` (opens the zip,
reads its central directory and inflates ``index.json``), a first ``get`` of one id (inflates
that member only), and a cold ``openapi`` built for a typed entry.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mock_server.endpoints.catalog import Catalog  # noqa: E402
from mock_server.endpoints.catalog._bundle import DATA  # noqa: E402


def _ms(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return (time.perf_counter() - start) * 1000, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--entries", type=int, default=50, help="ids read per round (first get of each)")
    parser.add_argument("--smoke", action="store_true", help="3 rounds of 5 entries")
    args = parser.parse_args()
    rounds, per_round = (3, 5) if args.smoke else (args.rounds, args.entries)
    figures: dict[str, list[float]] = {"Catalog()": [], "index load (first ids())": [], "one entry (first get)": [],
                                       "openapi(id) of a typed entry": []}
    ids = Catalog().ids()
    step = max(1, len(ids) // per_round)
    for r in range(rounds):
        took, catalog = _ms(Catalog)
        figures["Catalog()"].append(took)
        figures["index load (first ids())"].append(_ms(catalog.ids)[0])
        for endpoint_id in ids[r % step::step][:per_round]:
            figures["one entry (first get)"].append(_ms(lambda: catalog.get(endpoint_id))[0])
        figures["openapi(id) of a typed entry"].append(_ms(lambda: Catalog().openapi("fal-ai/wan-25-preview/image-to-image"))[0])
    print(f"catalogue: {DATA}, {len(ids)} endpoints; "
          f"{rounds} rounds, {per_round} entries each")
    print("| step | median ms | p95 ms |")
    print("|---|---|---|")
    for name, values in figures.items():
        values.sort()
        p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
        print(f"| {name} | {statistics.median(values):.3f} | {p95:.3f} |")


if __name__ == "__main__":
    main()
