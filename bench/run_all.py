"""Issue 8's table in one command: the peers side by side, the bare-ASGI floor, and the
project's own figures, with ratios and targets.

    python bench/run_all.py              # ~6 min: peers (../shared/bench/peers/run.sh, needs java + node),
                                         #         floor, round trip, fixture, render, 100k soak
    python bench/run_all.py --no-peers   # fal-mock and the floor only (no java/node needed)
    python bench/run_all.py --smoke      # a few seconds per part: proves the bench still runs (CI)

Rates: wrk -t1 -c32 on this machine, server and wrk sharing its cores, warmed; each rate is
the mean of the measured rounds.  fal-mock runs on the ``instant`` profile.  The floor is
``bench/floor_app.py`` (fixed JSON from a bare ASGI app) on the same uvicorn settings.
Start-up is launch -> first 2xx submit.  The machine's idleness is sampled before the run.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT.parent / "shared" / "bench" / "peers"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_queue import APP, BODY, ENDPOINT, post_script, wrk as run_wrk  # noqa: E402
from bench_soak import HEADERS, rss_mb  # noqa: E402
from server_process import free_port  # noqa: E402

TARGETS = ("fal-mock", "floor")


def pick_ports() -> dict[str, int]:
    """A port for each target that nothing listens on now (the OS picks them), distinct, so
    that runs side by side (CI, the smoke test) cannot clash."""
    ports: dict[str, int] = {}
    for name in TARGETS:
        port = free_port()
        while port in ports.values():
            port = free_port()
        ports[name] = port
    return ports


def fal_mock_cmd(port: int) -> list[str]:
    return [sys.executable, "-m", "mock_server", "serve", "--port", str(port), "--profile", "instant"]


def floor_cmd(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "floor_app:app", "--app-dir", str(ROOT / "bench"), "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]


# -- the machine ---------------------------------------------------------------------------

def cpu_busy() -> tuple[int, int]:
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def machine() -> dict:
    b0, t0 = cpu_busy()
    time.sleep(1.0)
    b1, t1 = cpu_busy()
    busy = 100.0 * (b1 - b0) / max(1, t1 - t0)
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return {"cpus": os.cpu_count(), "model": model, "python": platform.python_version(),
            "busy_before": busy, "idle": busy < 10.0, "load": os.getloadavg()[0]}


# -- one target, measured the way the peers' script does ---------------------------------------

def wrk(url: str, seconds: int, script: str | None = None) -> float:
    """Requests/s of one wrk run (-t1 -c32, as run.sh); refuses a run with failed answers."""
    row = run_wrk(url, seconds, 32, script)
    if row["non2xx"] or row["errors"]:
        raise RuntimeError(f"{url}: {row['non2xx']} non-2xx answers, {row['errors']} socket errors")
    return row["rps"]


def submit_once(port: int) -> dict | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("POST", f"/queue/{ENDPOINT}", body=json.dumps(BODY).encode(), headers=HEADERS)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return json.loads(data) if 200 <= response.status < 300 else None
    except (OSError, ValueError):
        return None


def launch(cmd: list[str], port: int) -> tuple[subprocess.Popen, float]:
    """Start ``cmd``; (process, ms from launch to its first 2xx submit), probing every 10 ms."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
                            start_new_session=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})
    while submit_once(port) is None:
        if proc.poll() is not None or time.perf_counter() - start > 30:
            raise RuntimeError(f"{cmd[0]} did not come up")
        time.sleep(0.01)
    return proc, (time.perf_counter() - start) * 1000


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def startup(cmd, port: int, trials: int) -> float:
    """Median ms from launch to the first 2xx submit over ``trials`` cold launches."""
    times = []
    for _ in range(trials):
        proc, ms = launch(cmd(port), port)
        times.append(ms)
        stop(proc)
    return statistics.median(times)


def measure_pair(args, post_lua: str) -> dict:
    """fal-mock and the floor side by side: start-up of each, then both up, warmed, and
    measured in alternation (status of each, then submit of each, per round), so that
    whatever else the machine does weighs on both alike."""
    commands = {"fal-mock": fal_mock_cmd, "floor": floor_cmd}
    ports = args.ports
    rows = {name: {"startup": startup(cmd, ports[name], args.startup_trials), "status": [], "submit": []}
            for name, cmd in commands.items()}
    procs = {}
    try:
        for name, cmd in commands.items():
            procs[name], _ = launch(cmd(ports[name]), ports[name])
            rows[name]["rss_idle"] = rss_mb(procs[name].pid)
        base = {name: f"http://127.0.0.1:{ports[name]}/queue" for name in commands}

        def status_url(name: str) -> str:
            rid = submit_once(ports[name])["request_id"]  # a fresh id: earlier ones may have been evicted
            return f"{base[name]}/{APP}/requests/{rid}/status?logs=0"

        for name in commands:
            wrk(status_url(name), args.warm)
        for name in commands:
            wrk(f"{base[name]}/{ENDPOINT}", args.warm, post_lua)
        for _ in range(args.rounds):
            for name in commands:
                rows[name]["status"].append(wrk(status_url(name), args.dur))
            for name in commands:
                rows[name]["submit"].append(wrk(f"{base[name]}/{ENDPOINT}", args.dur, post_lua))
        for name in commands:
            row = rows[name]
            row.update(status=statistics.mean(row["status"]), submit=statistics.mean(row["submit"]),
                       startup_py=row["startup"], rss=(row.pop("rss_idle"), rss_mb(procs[name].pid)))
    finally:
        for proc in procs.values():
            stop(proc)
    return rows


# -- the peers, through their own script -------------------------------------------------------

def peers(args, raw_dir: Path) -> tuple[dict, str]:
    port = args.ports["fal-mock"]
    env = {**os.environ,
           "FALMOCK_CMD": " ".join(["env", "PYTHONDONTWRITEBYTECODE="] + fal_mock_cmd(port)),
           "FALMOCK_URL": f"http://127.0.0.1:{port}/queue", "FALMOCK_HEADER": "Authorization: Key test:secret",
           "KEEP_RAW": str(raw_dir), "DUR": str(args.dur), "WARM": str(args.warm), "ROUNDS": str(args.rounds),
           "STARTUP_TRIALS": str(args.startup_trials)}
    done = subprocess.run(["bash", str(PEERS / "run.sh")], env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"run.sh failed:\n{done.stdout}\n{done.stderr}")
    rows: dict[str, dict] = {}
    meta, current = {}, None
    for line in (raw_dir / "meta").read_text().splitlines():
        key, *values = line.split()
        if key == "target":
            current = values[0]
            meta[current] = {}
        else:
            meta[current][key] = values
    for name, facts in meta.items():
        rates = {}
        for kind in ("status", "submit"):
            found = []
            for r in range(1, args.rounds + 1):
                text = (raw_dir / f"r{r}.{kind}.{name}").read_text()
                found.append(float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)))
            rates[kind] = statistics.mean(found)
        rows[name] = {**rates, "startup": statistics.median(float(x) for x in facts["startup"]),
                      "rss": (int(facts["rss"][0]) / 1024, int(facts["rss"][1]) / 1024)}
    note = next((line for line in done.stdout.splitlines() if "other processes used" in line), "")
    return rows, note


# -- the project's own figures -----------------------------------------------------------------

def own_figures(args) -> dict:
    from bench_fixture import one_trial
    from bench_queue import round_trips
    from server_process import ServerProcess

    out: dict = {}
    with ServerProcess(["--profile", "instant"]) as server:
        round_trips(server.port, 20)
        trips = sorted(round_trips(server.port, args.trips))
    out["trip"] = (statistics.median(trips), trips[min(len(trips) - 1, int(len(trips) * 0.99))])
    one_trial(10)
    trials = [one_trial(50) for _ in range(args.fixture_trials)]
    out["fixture"] = (statistics.median(t["start"] for t in trials), statistics.median(t["stop"] for t in trials))
    out["render"] = render_figures(args.render_repeats)
    soak = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_soak.py")] + (["--smoke"] if args.smoke else []),
                          capture_output=True, text=True, cwd=ROOT)
    samples = [(int(n.replace(",", "")), float(rss)) for n, rss in
               re.findall(r"^\s*([\d,]+)\s+([\d.]+)\s+[\d,]+\s+[\d.]+$", soak.stdout, re.M)]
    if soak.returncode != 0 and not samples:
        raise RuntimeError(f"bench_soak failed:\n{soak.stdout}\n{soak.stderr}")
    out["soak"] = samples
    return out


def render_figures(repeats: int) -> dict:
    from bench_render import render_times, sample_inputs

    inputs = sample_inputs()
    return {side: statistics.median(render_times(side, side, repeats, inputs)[0]) for side in (1024, 5000)}


# -- the table -----------------------------------------------------------------------------------

def report(host: dict, rows: dict, note: str, own: dict | None) -> None:
    print(f"fal-mock bench: {host['cpus']} CPUs ({host['model']}), Python {host['python']}; "
          f"machine {'idle' if host['idle'] else 'BUSY'} before the run ({host['busy_before']:.0f}% CPU busy, "
          f"load {host['load']:.2f})" + (f"; {note}" if note else ""))
    print()
    print("| target | status polls/s | submits/s | launch -> first 2xx | RSS idle -> after load |")
    print("|---|---|---|---|---|")
    labels = {"fal-mock": "fal-mock", "wiremock": "WireMock", "aimock": "aimock",
              "fal-mock (with floor)": "fal-mock, second pass (alternating with the floor)",
              "floor": "floor: bare ASGI, same uvicorn (alternating with fal-mock)"}
    for name, label in labels.items():
        if name in rows:
            r = rows[name]
            print(f"| {label} | {r['status']:,.0f} | {r['submit']:,.0f} | {r['startup']:.0f} ms | "
                  f"{r['rss'][0]:.0f} -> {r['rss'][1]:.0f} MB |")
    fm = rows["fal-mock"]
    print()
    print(f"launch -> first 2xx probed from Python every 10 ms (run.sh probes with curl): "
          f"fal-mock {fm['startup_py']:.0f} ms, floor {rows['floor']['startup_py']:.0f} ms")
    peer_names = [n for n in ("wiremock", "aimock") if n in rows]
    for name in peer_names:
        p = rows[name]
        print(f"fal-mock / {labels[name]} (one run.sh run): status {fm['status'] / p['status']:.2f}x, "
              f"submit {fm['submit'] / p['submit']:.2f}x")
    floor = rows["floor"]
    paired = rows.get("fal-mock (with floor)", fm)
    print(f"fal-mock / floor (alternating pass): status {paired['status'] / floor['status']:.0%}, "
          f"submit {paired['submit'] / floor['submit']:.0%}")
    checks = []
    if peer_names:
        best_status = max(rows[n]["status"] for n in peer_names)
        best_submit = max(rows[n]["submit"] for n in peer_names)
        checks += [("status >= 1.5x best peer", fm["status"] >= 1.5 * best_status, f"{fm['status'] / best_status:.2f}x"),
                   ("submit >= 1.5x best peer", fm["submit"] >= 1.5 * best_submit, f"{fm['submit'] / best_submit:.2f}x")]
    checks += [("status >= 50% of floor", paired["status"] >= 0.5 * floor["status"], f"{paired['status'] / floor['status']:.0%}"),
               ("submit >= 50% of floor", paired["submit"] >= 0.5 * floor["submit"], f"{paired['submit'] / floor['submit']:.0%}"),
               ("start <= 400 ms (issue 15)", fm["startup"] <= 400, f"{fm['startup']:.0f} ms")]
    if peer_names:
        checks.append(("start <= 400 ms (issue 15), Python probe", fm["startup_py"] <= 400, f"{fm['startup_py']:.0f} ms"))
    if own:
        trip = own["trip"]
        fixture = own["fixture"]
        render = own["render"]
        soak = own["soak"]
        print()
        print(f"round trip submit -> COMPLETED -> result (instant, 1 connection): p50 {trip[0]:.2f} ms, p99 {trip[1]:.2f} ms")
        print(f"pytest fixture in-process: start {fixture[0]:.1f} ms, stop {fixture[1]:.1f} ms")
        print(f"render + PNG: 1024² {render[1024]:.1f} ms, 5000² {render[5000]:.1f} ms")
        if soak:
            last = soak[-1]
            first = min(soak, key=lambda sample: abs(sample[0] - 10_000))  # the issue: flat from 10k to 100k
            growth = (last[1] - first[1]) / first[1]
            print(f"soak RSS: {first[1]:.0f} MB at {first[0]:,} requests, {last[1]:.0f} MB at {last[0]:,} ({growth:+.0%})")
            checks += [("RSS <= 100 MB after the soak", last[1] <= 100, f"{last[1]:.0f} MB"),
                       (f"RSS flat (10%) from {first[0]:,} to {last[0]:,} requests", abs(growth) <= 0.10, f"{growth:+.0%}")]
        checks += [("fixture start < 50 ms and stop < 50 ms", fixture[0] < 50 and fixture[1] < 50,
                    f"{fixture[0]:.1f} / {fixture[1]:.1f} ms"),
                   ("render 1024² <= 15 ms, 5000² <= 200 ms", render[1024] <= 15 and render[5000] <= 200,
                    f"{render[1024]:.1f} / {render[5000]:.1f} ms")]
    print()
    print("| target (issues 8, 15) | met | figure |")
    print("|---|---|---|")
    for label, ok, figure in checks:
        print(f"| {label} | {'yes' if ok else 'NO'} | {figure} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-peers", action="store_true", help="skip WireMock and aimock (no java/node needed)")
    parser.add_argument("--smoke", action="store_true", help="seconds per part, no peers: proves the bench runs (CI)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("run_all: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    full = not args.smoke
    args.dur, args.warm, args.rounds = (5, 15, 2) if full else (1, 1, 1)
    args.startup_trials = 5 if full else 1
    args.trips, args.fixture_trials, args.render_repeats = (1000, 10, 7) if full else (20, 2, 1)
    args.ports = pick_ports()
    use_peers = full and not args.no_peers
    if use_peers and not (PEERS / "run.sh").exists():
        print(f"run_all: {PEERS / 'run.sh'} not found; measuring without peers", file=sys.stderr)
        use_peers = False
    host = machine()
    with tempfile.TemporaryDirectory() as tmp:
        post_lua = post_script(Path(tmp))
        note, rows = "", {}
        if use_peers:
            print("peers (run.sh) ...", file=sys.stderr)
            rows, note = peers(args, Path(tmp) / "raw")
        print("fal-mock and the floor, alternating ...", file=sys.stderr)
        pair = measure_pair(args, post_lua)
        if use_peers:
            rows["fal-mock"]["startup_py"] = pair["fal-mock"]["startup"]
            rows["fal-mock (with floor)"] = pair["fal-mock"]
        else:
            rows["fal-mock"] = pair["fal-mock"]
        rows["floor"] = pair["floor"]
    print("own figures ...", file=sys.stderr)
    own = own_figures(args)
    report(host, rows, note, own)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
