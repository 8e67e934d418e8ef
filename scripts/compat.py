#!/usr/bin/env python3
"""Prove the tested version range of the dependencies whose internals fal-mock touches.

fal-mock subclasses uvicorn's httptools protocol (mock_server/server/fastlane.py), so it relies on
uvicorn, httptools and uvloop beyond their public API, and its tests drive the official
``fal-client``.  For each of these packages, one at a time, this script installs the project
into a fresh venv with everything else pinned by ``requirements.lock`` and runs the
server-facing tests.  Versions tried per package (a version in two roles runs once):

* lowest  - the lowest version the project admits: pyproject.toml's bound, or for httptools
            and uvloop the bound of the locked uvicorn (``uv pip compile --resolution lowest``
            with every other package pinned by the lock);
* highest - the highest version the project admits, found the same way;
* newest  - the newest release on PyPI (for Python 3.11).

Usage, from anywhere (needs ``uv`` on PATH; stdlib only):

    python scripts/compat.py                              # all four packages, a few minutes
    python scripts/compat.py --only uvicorn               # one package
    python scripts/compat.py --versions uvicorn=0.50.0,0.53.0 --versions uvloop=0.19.0
    python scripts/compat.py --tests tests/test_fastlane.py --keep
    python scripts/compat.py --only httptools --pin uvicorn=0.53.0   # against another base

``--versions`` replaces the default candidates of the packages it names (and, without
``--only``, runs only those packages).  A version inside the allowed range is installed
under the lock's constraints; one outside it (say fal-client 1.0.0 against the project's
``==1.0.3``, or httptools 0.7.1 against uvicorn's ``>=0.8.0``) is forced with uv's
``--override``, and its row only informs, so the range can be widened on evidence.
Prints a Markdown table and the failing tests; exits 1 if a version inside the allowed
range failed (install failures included).  Venvs, constraint files and pytest logs go to
``.compat/`` (git-ignored); venvs are removed after each run unless ``--keep``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

PACKAGES = ("uvicorn", "httptools", "uvloop", "fal-client")
SERVER_TESTS = [
    "tests/test_fastlane.py",
    "tests/test_http_queue.py",
    "tests/test_cli.py",
    "tests/test_uvicorn_compat.py",
    "tests/test_python_client.py",
    "tests/test_pytest_plugin.py",
]
ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".compat"
UV_ENV = {**os.environ, "NO_COLOR": "1"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def uv(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["uv", *args], cwd=ROOT, env=UV_ENV, input=stdin,
                          capture_output=True, text=True)


def one_line(stderr: str) -> str:
    """The gist of a uv error: its first two meaningful lines, box drawing removed."""
    lines = [re.sub(r"^[\s×╰─▶├│]*(error:|cause:)?", "", line).strip()
             for line in stderr.splitlines()]
    lines = [line for line in lines if line and not re.match(
        r"(Using|Resolved|Prepared|Audited|Installed|Uninstalled|Building|Built|Downloading|"
        r"Downloaded|warning:|help:|hint:)", line)]
    return ": ".join(lines[:2])[:220] or "unknown error"


def constraints(lock: str, pkg: str, pin: str | None = None) -> Path:
    """The lock without ``pkg`` (plus ``pkg==pin``), written to .compat/."""
    kept = [line for line in lock.splitlines()
            if not ((m := re.match(r"([A-Za-z0-9._-]+)==", line)) and norm(m[1]) == norm(pkg))]
    if pin:
        kept.append(f"{pkg}=={pin}")
    path = WORK / f"constraints-{pkg}-{pin or 'free'}.txt"
    path.write_text("\n".join(kept) + "\n")
    return path


def compile_version(pkg: str, cons: Path | None, python: str, resolution: str = "highest"):
    """Resolve the project (or, without ``cons``, ``pkg`` alone) -> (version or None, error)."""
    if cons is None:
        done = uv("pip", "compile", "-", "--no-deps", "--python-version", python,
                  "--no-header", "--no-annotate", stdin=pkg + "\n")
    else:
        done = uv("pip", "compile", "pyproject.toml", "--extra", "test", "--python-version",
                  python, "-c", str(cons), "--resolution", resolution,
                  "--no-header", "--no-annotate")
    for line in done.stdout.splitlines():
        name, _, version = line.partition("==")
        if norm(name) == norm(pkg):
            return version.split(";")[0].strip(), ""
    return None, one_line(done.stderr)


def extras(pkg: str) -> str:
    """``[standard]`` if pyproject.toml asks for ``pkg[standard]``, else ``""``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"] + project.get("optional-dependencies", {}).get("test", []):
        m = re.match(r"\s*([A-Za-z0-9._-]+)\s*(\[[^\]]*\])?", req)
        if m and norm(m[1]) == norm(pkg):
            return m[2] or ""
    return ""


def trial(pkg: str, version: str, lock: str, force: bool, args) -> dict:
    """Install the project with ``pkg==version`` into a fresh venv and run the tests.

    ``force``: override every requirement on ``pkg`` (pyproject's and other packages')."""
    venv = WORK / "venvs" / f"{pkg}-{version}"
    shutil.rmtree(venv, ignore_errors=True)
    row: dict = {"installed": {}, "passed": "-", "failed": "-", "failures": [], "ok": False}
    try:
        made = uv("venv", str(venv), "--python", args.python, "-q")
        if made.returncode:
            row["verdict"] = f"venv failed: {one_line(made.stderr)}"
            return row
        py = str(venv / "bin" / "python")
        pins = ["-c", str(constraints(lock, pkg, None if force else version))]
        if force:
            override = WORK / f"override-{pkg}-{version}.txt"
            override.write_text(f"{pkg}{extras(pkg)}=={version}\n")  # keeps uvicorn[standard]
            pins += ["--override", str(override)]
        done = uv("pip", "install", "--python", py, "-e", ".[test]", *pins)
        if done.returncode:
            row["verdict"] = f"install failed: {one_line(done.stderr)}"
            return row
        probe = ("import importlib.metadata as m, json\n"
                 "def v(n):\n try: return m.version(n)\n except m.PackageNotFoundError: return '-'\n"
                 f"print(json.dumps({{n: v(n) for n in {list(PACKAGES)!r}}}))")
        row["installed"] = json.loads(subprocess.run(
            [py, "-c", probe], capture_output=True, text=True, check=True).stdout)
        env = {**os.environ, "VIRTUAL_ENV": str(venv),
               "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
        env.pop("PYTHONPATH", None)
        cmd = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", *args.tests]
        try:
            test = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=args.timeout)
            out, rc = test.stdout + test.stderr, test.returncode
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) \
                else (exc.stdout or "")
            out, rc = out + f"\ncompat.py: timed out after {args.timeout} s\n", -1
        (WORK / "logs").mkdir(parents=True, exist_ok=True)
        (WORK / "logs" / f"{pkg}-{version}.log").write_text(out)
        counts = {"passed": 0, "failed": 0}
        summary = [line for line in out.splitlines() if re.search(r"\d+ (passed|failed|errors?)\b", line)]
        for n, word in re.findall(r"(\d+) (passed|failed|errors?)\b", summary[-1] if summary else ""):
            counts["passed" if word == "passed" else "failed"] += int(n)
        row.update(counts)
        row["failures"] = sorted({m[1] for m in re.finditer(r"^(?:FAILED|ERROR) (\S+)", out, re.M)})
        row["ok"] = rc == 0
        row["verdict"] = "pass" if rc == 0 else (
            "FAIL" if counts["failed"] or row["failures"] else
            f"FAIL (pytest killed by signal {-rc})" if rc < -1 else f"FAIL (pytest exit {rc})")
        return row
    finally:
        if not args.keep:
            shutil.rmtree(venv, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=PACKAGES, action="append",
                        help="run this package only (repeatable)")
    parser.add_argument("--versions", action="append", default=[], metavar="PKG=V1,V2",
                        help="try these versions of PKG instead of lowest/highest/newest")
    parser.add_argument("--pin", action="append", default=[], metavar="PKG=V",
                        help="replace the lock's pin of PKG for every row (repeatable)")
    parser.add_argument("--tests", nargs="+", default=SERVER_TESTS, help="pytest arguments")
    parser.add_argument("--keep", action="store_true", help="keep the venvs in .compat/venvs")
    parser.add_argument("--python", default="3.11", help="Python version of the venvs (3.11)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per pytest run")
    args = parser.parse_args()
    if shutil.which("uv") is None:
        sys.exit("compat.py: needs uv on PATH")
    requested: dict[str, list[str]] = {}
    for item in args.versions:
        pkg, _, versions = item.partition("=")
        if norm(pkg) not in PACKAGES or not versions:
            parser.error(f"--versions {item!r}: want PKG=V1,V2 with PKG one of {PACKAGES}")
        requested.setdefault(norm(pkg), []).extend(v.strip() for v in versions.split(",") if v.strip())
    packages = args.only or (list(requested) if requested else list(PACKAGES))
    WORK.mkdir(exist_ok=True)
    lock = (ROOT / "requirements.lock").read_text()  # read once: the tree may change meanwhile
    for item in args.pin:
        pkg, _, version = item.replace("==", "=").partition("=")
        lock = constraints(lock, pkg).read_text() + f"{pkg}=={version}\n"

    rows = []
    for pkg in packages:
        free = constraints(lock, pkg)
        bounds = {"lowest": compile_version(pkg, free, args.python, "lowest"),
                  "highest": compile_version(pkg, free, args.python, "highest"),
                  "newest": compile_version(pkg, None, args.python)}
        roles: dict[str, list[str]] = {}
        for role, (version, error) in bounds.items():
            if version is None:
                rows.append({"pkg": pkg, "version": "?", "role": role, "passed": "-", "failed": "-",
                             "verdict": f"resolve failed: {error}", "ok": role == "newest",
                             "installed": {}, "failures": []})
            elif pkg not in requested:
                roles.setdefault(version, []).append(role)
        for version in requested.get(pkg, []):
            tags = [role for role, (v, _) in bounds.items() if v == version]
            if not {"lowest", "highest"} & set(tags):
                allowed, _ = compile_version(pkg, constraints(lock, pkg, version), args.python)
                tags.append("requested, in range" if allowed else "requested, outside range")
            roles.setdefault(version, tags)
        for version, tags in roles.items():
            in_range = "lowest" in tags or "highest" in tags or "requested, in range" in tags
            print(f"compat: {pkg}=={version} ({', '.join(tags)}) ...", file=sys.stderr, flush=True)
            row = {"pkg": pkg, "version": version, "role": ", ".join(tags),
                   **trial(pkg, version, lock, not in_range, args)}
            if not in_range:
                row["verdict"] += " (outside range, forced)"
                row["ok"] = True  # outside the allowed range: informative only
            print(f"compat:   -> {row['verdict']}", file=sys.stderr, flush=True)
            rows.append(row)

    if args.pin:
        print(f"Lock pins replaced for every row: {', '.join(args.pin)}\n")
    print("| package | version | role | passed | failed | verdict | installed (uvicorn / httptools / uvloop / fal-client) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        installed = " / ".join(r["installed"].get(p, "-") for p in PACKAGES) if r["installed"] else "-"
        print(f"| {r['pkg']} | {r['version']} | {r['role']} | {r['passed']} | {r['failed']} "
              f"| {r['verdict'].replace('|', '/')} | {installed} |")
    for r in rows:
        if r["failures"]:
            print(f"\nFailing tests with {r['pkg']}=={r['version']} "
                  f"(log: .compat/logs/{r['pkg']}-{r['version']}.log):")
            print("\n".join(f"- {name}" for name in r["failures"]))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
