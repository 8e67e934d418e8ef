"""Compare the JSON shapes (keys and value types, never values) of recorded live responses
with the mock's responses for the same tests.

    python -m contract_tests.shape_diff [RECORDED_DIR] [MOCK_DIR]
        defaults: fixtures/recorded fixtures/mock-shapes

Both folders hold files written by the suite's ``--record`` option
(``--target live --record`` -> fixtures/recorded/, ``--target mock --record`` ->
fixtures/mock-shapes/), one per test: ``{"test", "target", "responses": [{"label",
"status", "body"}]}``.  Responses are matched by file name and label.  Exit status: 0 no
differences, 1 differences, 2 nothing to compare (no recordings yet).

A plain mock run (``pytest contract_tests``) prints the same diff at the end, against
the responses it just saw, whenever fixtures/recorded/ has recordings.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from contract_tests.support import shape, shape_diff

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RECORDED = REPO / "fixtures" / "recorded"
DEFAULT_MOCK = REPO / "fixtures" / "mock-shapes"


def load_recordings(directory: Path) -> dict[str, list[dict]]:
    """``{file stem: responses}`` of every recording in ``directory`` ({} when none)."""
    found: dict[str, list[dict]] = {}
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob("*.json")):
        try:
            responses = json.loads(path.read_text())["responses"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(responses, list):
            found[path.stem] = responses
    return found


def diff_sets(recorded: dict[str, list[dict]], mock: dict[str, list[dict]]) -> list[str]:
    """Differences, one line each, between recorded and mock responses (by test and label).

    A recorded test the mock has no file for is listed; mock-only tests are not (a live
    run without ``--costly`` records only the cheap tests).
    """
    lines: list[str] = []
    for name, responses in sorted(recorded.items()):
        if name not in mock:
            lines.append(f"{name}: recorded, but no mock response for it")
            continue
        theirs = {r.get("label"): r for r in mock[name]}
        for response in responses:
            label = response.get("label")
            other = theirs.get(label)
            if other is None:
                lines.append(f"{name} [{label}]: no mock response with this label")
                continue
            if response.get("status") != other.get("status"):
                lines.append(f"{name} [{label}]: status recorded {response.get('status')}, mock {other.get('status')}")
            lines += [f"{name} [{label}] {d}" for d in shape_diff(shape(response.get("body")), shape(other.get("body")))]
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args) or len(args) > 2:
        print(__doc__.strip().split("\n\n")[1])
        return 0 if args and args[0] in ("-h", "--help") else 2
    recorded_dir = Path(args[0]) if args else DEFAULT_RECORDED
    mock_dir = Path(args[1]) if len(args) > 1 else DEFAULT_MOCK
    recorded = load_recordings(recorded_dir)
    if not recorded:
        print(f"no recordings in {recorded_dir} (make some with: FAL_KEY=... pytest contract_tests --target live --record)")
        return 2
    mock = load_recordings(mock_dir)
    if not mock:
        print(f"no mock responses in {mock_dir} (make them with: pytest contract_tests --record)")
        return 2
    lines = diff_sets(recorded, mock)
    for line in lines:
        print(line)
    print(f"{len(recorded)} recorded test(s) compared with {mock_dir}: "
          + (f"{len(lines)} difference(s)" if lines else "same shapes"))
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
