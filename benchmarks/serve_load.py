"""zoo serve under load: N concurrent clients on loopback for a bounded time, beside zoo run's folder throughput on the
same images, in one run (by hand; benchmarks/run.py does not run it).

    python benchmarks/serve_load.py                          # bisenet, 16 clients x 30 s, 48 images at 256x512
    python benchmarks/serve_load.py --clients 8 --seconds 10 --size 512x1024 --no-ray
    python benchmarks/serve_load.py --home DIR --write        # keep the scratch ZOO_HOME; put the section in BENCHMARKS.md

Passes, in this order: ``zoo run MODEL FOLDER`` (its own "N image(s) in S s", model load excluded), ``zoo serve``
with its defaults (batching ``--max-batch 4 --max-wait-ms 2``; one single-threaded session per core), ``zoo serve
--max-batch 1``, ``zoo serve --instances 1`` (one session on every core, as zoo run runs), ``zoo serve --engine ray
--replicas 2`` (a local Ray), then ``zoo run`` again. Each client keeps one HTTP/1.1 connection and POSTs the images
in turn to ``/v1/models/MODEL/segment``; a 200 whose body differs from zoo run's ``.labels.png`` for that image counts
as an error too. Throughput counts answered requests over the pass's duration; latencies are per request.
Target: 0 errors and local-engine throughput >= 0.9x zoo run's (the mean of its two passes).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from ray_engine import make_images, setup  # noqa: E402

TARGET = 0.9
BEGIN, END = "<!-- serve_load.py: begin -->", "<!-- serve_load.py: end -->"  # the section this script owns
READY = re.compile(r"on https?://[\d.]+:(\d+)")


def zoo_run(model: str, folder: Path, out: Path, env: dict[str, str]) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-m", "zoo", "run", model, str(folder), "--out", str(out)],
                          capture_output=True, text=True, env=env, check=True)  # fmt: skip
    n, seconds = re.search(r"(\d+) image\(s\) in ([\d.]+) s", proc.stderr).groups()
    return {"images": int(n), "seconds": float(seconds), "per_s": int(n) / float(seconds)}


def start_server(model: str, args: list[str], env: dict[str, str], timeout: float = 600) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "zoo", "serve", model, *args], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env=env)  # fmt: skip
    deadline = time.monotonic() + timeout
    for line in proc.stderr:  # type: ignore[union-attr]
        match = READY.search(line)
        if match:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # drain the access log
            return proc, int(match.group(1))
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError(f"zoo serve {' '.join(args)} did not start")


def load(port: int, model: str, bodies: list[bytes], expected: list[bytes], clients: int, seconds: float) -> dict:
    """``clients`` threads, each on its own keep-alive connection, for ``seconds``: throughput, latency, errors."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        i = k
        while time.monotonic() < stop:
            j = i % len(bodies)
            i += 1
            started = time.perf_counter()
            try:
                conn.request("POST", f"/v1/models/{model}/segment", bodies[j], {"Content-Type": "image/jpeg"})
                reply = conn.getresponse()
                body = reply.read()
                why = None if reply.status == 200 and body == expected[j] else \
                    (f"HTTP {reply.status}" if reply.status != 200 else "differs from zoo run")
            except (OSError, http.client.HTTPException) as exc:
                why = type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            took = time.perf_counter() - started
            with lock:
                if why is None:
                    latencies.append(took)
                else:
                    errors[why] = errors.get(why, 0) + 1
        conn.close()

    began = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began  # the last requests finish after `stop`: they count, and so does their time
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    return {"ok": len(latencies), "errors": errors, "seconds": elapsed, "per_s": len(latencies) / elapsed,
            "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99)}  # fmt: skip


def serve_pass(name: str, model: str, args: list[str], env: dict, bodies: list[bytes], expected: list[bytes],
               clients: int, seconds: float) -> dict:  # fmt: skip
    common.log(f"{name}: starting zoo serve {' '.join(args)}")
    proc, port = start_server(model, args, env)
    try:
        load(port, model, bodies[:4], expected[:4], min(clients, 4), 3)  # warm-up, not counted
        common.log(f"{name}: {clients} clients for {seconds:.0f} s")
        result = load(port, model, bodies, expected, clients, seconds)
    finally:
        proc.terminate()
        result_code = proc.wait(300)
    result.update(name=name, args=args, exit_code=result_code)
    common.log(f"{name}: {result['per_s']:.2f} req/s, p50 {result['p50_ms']:.0f} ms, errors {result['errors']}")
    return result


def write_section(text: str) -> None:
    """Replace this script's section of BENCHMARKS.md (or append it)."""
    path = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
    doc = path.read_text(encoding="utf-8")
    if BEGIN in doc and END in doc:
        doc = doc[: doc.index(BEGIN)] + text + doc[doc.index(END) + len(END) :]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(doc, encoding="utf-8")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bisenet")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--size", default="256x512", help="HxW of the synthetic JPEGs")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--home", type=Path, help="scratch ZOO_HOME to reuse or keep")
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray engine pass")
    parser.add_argument("--write", action="store_true", help="put the section into BENCHMARKS.md")
    parser.add_argument("--from-json", type=Path, help="render a saved report instead of measuring")
    a = parser.parse_args()
    if a.from_json:
        report = json.loads(a.from_json.read_text())
    else:
        report = measure(a)
        print(json.dumps(report, indent=2))
    if a.write:
        write_section(render(report))


def measure(a: argparse.Namespace) -> dict:
    h, w = (int(v) for v in a.size.lower().split("x"))
    home = a.home or Path(tempfile.mkdtemp(prefix="zoo-serve-bench-"))
    env = {**os.environ, "ZOO_HOME": str(home), "ZOO_OFFLINE": "1"}
    os.environ["ZOO_HOME"] = str(home)
    setup(a.model)
    paths = make_images(home / "images", a.images, (h, w))
    oracle_out = home / "zoo-run"
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    common.log("zoo run: folder throughput")
    runs = [zoo_run(a.model, home / "images", oracle_out, env)]
    bodies = [p.read_bytes() for p in paths]
    expected = [(oracle_out / f"{p.stem}.labels.png").read_bytes() for p in paths]
    passes = [serve_pass("serve, defaults: batching (--max-batch 4 --max-wait-ms 2), 1 session per core", a.model, ["--port", "0"], env, bodies,
                         expected, a.clients, a.seconds),
              serve_pass("serve, no batching (--max-batch 1)", a.model, ["--port", "0", "--max-batch", "1"], env,
                         bodies, expected, a.clients, a.seconds),
              serve_pass("serve, zoo run's layout: 1 session x all cores (--instances 1)", a.model,
                         ["--port", "0", "--instances", "1"], env, bodies, expected, a.clients, a.seconds)]  # fmt: skip
    if not a.no_ray:
        passes.append(serve_pass("serve --engine ray --replicas 2", a.model,
                                 ["--engine", "ray", "--replicas", "2", "--port", str(free_port())], env, bodies,
                                 expected, a.clients, a.seconds))  # fmt: skip
    common.log("zoo run: folder throughput, again")
    runs.append(zoo_run(a.model, home / "images", oracle_out, env))
    run_rate = sum(r["per_s"] for r in runs) / len(runs)
    local = [p for p in passes if "ray" not in p["name"] and "layout" not in p["name"]]
    ok = all(not p["errors"] for p in passes) and all(p["per_s"] >= TARGET * run_rate for p in local)
    return {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "model": a.model, "size": [h, w],
            "images": a.images, "clients": a.clients, "seconds": a.seconds, "cores": os.cpu_count(),
            "load_before": load_before, "load_after": Path("/proc/loadavg").read_text().split()[:3],
            "zoo_run": runs, "zoo_run_per_s": run_rate, "passes": passes, "target": TARGET, "pass": ok}  # fmt: skip


def render(r: dict) -> str:
    h, w = r["size"]
    rows = [f"| `zoo run {r['model']} FOLDER` ({x['images']} images) | {x['per_s']:.2f} | – | – | – | – | – |"
            for x in r["zoo_run"]]
    for p in r["passes"]:
        errors = sum(p["errors"].values())
        rows.append(f"| `zoo {p['name']}` | {p['per_s']:.2f} | {p['per_s'] / r['zoo_run_per_s']:.2f}× | "
                    f"{p['p50_ms']:.0f} | {p['p90_ms']:.0f} | {p['p99_ms']:.0f} | {errors} |")  # fmt: skip
    verdict = "pass" if r["pass"] else "**miss**"
    return "\n".join([
        BEGIN,
        "## 12. `zoo serve` under load",
        "",
        f"Written by `python benchmarks/serve_load.py` (by hand) on {r['when']}: model `{r['model']}` (seeded random "
        f"weights), {r['images']} synthetic {h}×{w} JPEGs, {r['clients']} concurrent clients on loopback for "
        f"{r['seconds']:.0f} s per pass, each on one keep-alive connection POSTing the images in turn to "
        "`/v1/models/NAME/segment`; a reply that is not byte for byte zoo run's `.labels.png` counts as an error. "
        f"{r['cores']} cores; load average before {' '.join(r['load_before'])}, after {' '.join(r['load_after'])} "
        "(**the machine is shared**: other sessions' work runs beside these passes, and the clients run on the same "
        "cores as the server).",
        "",
        "| pass | requests/s | ÷ zoo run | p50 ms | p90 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Target: 0 errors, and the local engine ≥ {r['target']:.1f}× zoo run's folder throughput (mean of its two "
        f"passes, {r['zoo_run_per_s']:.2f} images/s): {verdict}. zoo run writes four files per image where the "
        "server encodes one PNG; the server pays HTTP and the clients' own CPU instead.",
        "",
        "How far to trust it: the machine's two cores were saturated by other sessions throughout (load average "
        "above 10), and zoo run's two passes alone differed by up to 1.6×, so the ratios are good to about ±0.3 and the "
        "order of the local passes changes from run to run.",
        *[f"{line}" for line in r.get("earlier", [])],
        "The default of one single-threaded session per core came from that first run (a 2-thread session waits at "
        "every layer for whichever of its threads another process has preempted); the runs since do not separate it "
        "from `--instances 1` beyond the noise, nor batching from no batching. The Ray pass is **not comparable** "
        "with the others on this machine: the kernel schedules by session group (`sched_autogroup_enabled=1`), and "
        "Ray's processes (proxy, controller, replicas) most likely get CPU shares of their own beside everyone "
        "else's, while the local server, its clients and zoo run share one (not verified beyond `top`, which showed "
        "each of the local server's inference threads at about 12% of a core during a pass). On a quiet machine the "
        "Ray engine adds a proxy hop per request to the same per-replica work; what it is for is more machines.",
        END,
    ])  # fmt: skip


if __name__ == "__main__":
    main()
