"""Regenerate BENCHMARKS.md: zoo measured against its baselines on this machine, in one run (run by hand, not in CI).

    python benchmarks/run.py                      # everything (~15-25 min on 2 cores), writes BENCHMARKS.md
    python benchmarks/run.py --home DIR           # reuse (or keep) the scratch ZOO_HOME with the exported models
    python benchmarks/run.py --sections 1,4       # only some sections (the report shows the others as not run)
    python benchmarks/run.py --from-json R.json   # re-render the report from a saved run

The five registry architectures are exported with seeded random weights into a scratch ZOO_HOME (never the user's
cache) and converted with zoo's own converter. Every timing uses 2 threads at 512x1024 unless a section says
otherwise. Progress goes to stderr; the raw numbers are saved as ``results.json`` in the scratch home.

Sections (the targets are in report.py):
    1 ORT vs Paddle Inference per model       5 CLI start-up
    2 zoo's runner vs a bare session.run      6 pull from a loopback server vs curl, and resume
    3 folder throughput of zoo run            7 convert time, first and cached
    4 achieved GFLOP/s vs one big Conv        8 peak RSS of zoo run vs bare ORT
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import report  # noqa: E402
from common import REPO, child, log, median  # noqa: E402

MODELS = ("bisenet", "fcn", "deeplabv3", "deeplabv3p", "danet")
SIZE = (512, 1024)  # (H, W)
THREADS = 2
FAST = {"bisenet", "fcn"}  # more runs for these; the ResNet-50 models take seconds per image
FOLDER_MODEL, FOLDER_IMAGES = "bisenet", 50
PULL_BYTES = 100_000_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="scratch ZOO_HOME to use and keep (default: a temp dir, removed)")
    parser.add_argument("--sections", default="1,2,3,4,5,6,7,8", help="comma-separated section numbers")
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md", help="report to write")
    parser.add_argument("--from-json", type=Path, help="render the report from a saved results.json; measure nothing")
    args = parser.parse_args()
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        args.out.write_text(report.render(results), encoding="utf-8")
        log(f"wrote {args.out}")
        return 0
    sections = {int(s) for s in args.sections.split(",") if s.strip()}
    home = args.home or Path(tempfile.mkdtemp(prefix="zoo-bench-home-"))
    home.mkdir(parents=True, exist_ok=True)
    for var in ("ZOO_REGISTRY", "ZOO_PLUGINS", "ZOO_OFFLINE", "ZOO_MIRROR", "ZOO_REQUIRE_HASH"):
        os.environ.pop(var, None)
    os.environ["ZOO_HOME"] = str(home / "zoo")
    os.environ.setdefault("GLOG_minloglevel", "2")
    work = home / "work"
    work.mkdir(exist_ok=True)
    started = time.time()
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(), "versions": versions(),
        "load_before": os.getloadavg(), "threads": THREADS, "size": list(SIZE), "models": list(MODELS),
        "sections": sorted(sections),
    }  # fmt: skip
    log(f"scratch ZOO_HOME {os.environ['ZOO_HOME']}; sections {sorted(sections)}")
    try:
        results["setup"] = setup()  # exports + conversions: section 7's first numbers
        images = make_images(work / "images", FOLDER_IMAGES)
        steps = [
            (5, "startup", lambda: startup()),
            (7, "convert", lambda: convert_times(results["setup"])),
            (1, "backends", lambda: backends()),
            (2, "overhead", lambda: overhead(work, images)),
            (4, "flops", lambda: flops(results.get("overhead"))),
            (3, "folder", lambda: folder(work, images)),
            (8, "rss", lambda: rss(work, images[0])),
            (6, "pull", lambda: pull(work)),
        ]
        for number, key, step in steps:
            if number in sections:
                log(f"section {number}: {key}")
                results[key] = step()
    finally:
        results["load_after"] = os.getloadavg()
        results["wall_seconds"] = round(time.time() - started, 1)
        (home / "results.json").write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
        log(f"raw results in {home / 'results.json'}")
    args.out.write_text(report.render(results), encoding="utf-8")
    log(f"wrote {args.out} in {results['wall_seconds'] / 60:.1f} min")
    if args.home is None:
        shutil.rmtree(home, ignore_errors=True)
    return 0


# ---- what ran where --------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu": platform.processor() or "?", "cores": os.cpu_count(), "kernel": platform.release()}
    try:
        text = Path("/proc/cpuinfo").read_text()
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["cpu"] = fields.get("model name", info["cpu"])
        flags = set(fields.get("flags", "").split())
        wanted = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
        info["flags"] = [f for f in wanted if f in flags]
        info["family_model"] = f"family {fields.get('cpu family')} model {fields.get('model')}"
        info["mhz"] = fields.get("cpu MHz")
        info["hypervisor"] = "hypervisor" in flags
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gb"] = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return info


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("zoo", "paddlepaddle", "paddle2onnx", "onnxruntime", "onnx", "numpy", "opencv-python-headless",
                 "typer", "httpx"):  # fmt: skip
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = "-"
    try:
        found["curl"] = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split()[1]
    except (OSError, IndexError):
        found["curl"] = "-"
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True)  # fmt: skip
        found["zoo_git"] = rev.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")
    except OSError:
        pass
    return found


# ---- setup and section 7 ---------------------------------------------------------------------------------------------


def paddle_format() -> dict[str, Any]:
    """Which Paddle program format to export for Paddle Inference's fastest CPU path (zoo/paddle_config.py decides)."""
    try:
        from zoo import paddle_config
    except ImportError:
        return {"legacy": True, "why": "zoo.paddle_config is absent; legacy program + oneDNN is the known fast path"}
    pick = getattr(paddle_config, "BEST_FORMAT", None)
    legacy = pick != "pir"
    return {"legacy": legacy, "why": f"zoo.paddle_config picks {'legacy program + oneDNN' if legacy else 'PIR'}"}


def setup() -> dict[str, Any]:
    """Export each model with seeded random weights and convert it with zoo; time both."""
    from zoo import cache
    from zoo.convert import convert
    from zoo.export import export_model

    fmt = paddle_format()
    done: dict[str, Any] = {"paddle_format": fmt, "models": {}}
    for name in MODELS:
        record: dict[str, Any] = {}
        if "paddle" in cache.get_ref(name) and "onnx" in cache.cached_formats(name):
            log(f"setup {name}: already in the scratch cache")
            record["reused"] = True
        else:
            log(f"setup {name}: export ({'legacy' if fmt['legacy'] else 'PIR'}) with seeded random weights")
            t = time.perf_counter()
            folder = export_model(name, weights="random", seed=0, legacy=fmt["legacy"])
            record["export_s"] = round(time.perf_counter() - t, 2)
            log(f"setup {name}: convert to ONNX")
            result = convert(name)
            record["convert_s"] = round(result.seconds, 2)
            record["program"] = cache.program_file(folder).name
        record["onnx"] = str(cache.onnx_model_path(name))
        record["onnx_mb"] = round(Path(record["onnx"]).stat().st_size / 1e6, 1)
        done["models"][name] = record
    return done


def convert_times(setup_done: dict[str, Any]) -> dict[str, Any]:
    """Section 7: the first convert (from setup) and a second, cached one: in-process call and the whole CLI."""
    from zoo.convert import convert

    out = {}
    zoo_cmd = _zoo_cmd()
    for name in MODELS:
        calls = [convert(name).seconds for _ in range(3)]
        cli = [common.run([*zoo_cmd, "convert", name]).seconds for _ in range(3)]
        first = setup_done["models"][name].get("convert_s")
        out[name] = {"first_s": first, "cached_call_s": median(calls), "cached_cli_s": median(cli),
                     "export_s": setup_done["models"][name].get("export_s")}  # fmt: skip
        log(f"convert {name}: first {first} s, cached call {median(calls) * 1000:.1f} ms, CLI {median(cli):.2f} s")
    return out


# ---- section 5 -------------------------------------------------------------------------------------------------------


def _zoo_cmd() -> list[str]:
    script = Path(sys.executable).with_name("zoo")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "zoo"]


def startup(rounds: int = 10) -> dict[str, Any]:
    zoo_cmd = _zoo_cmd()
    cmds = {
        "zoo --help": [*zoo_cmd, "--help"],
        "zoo list": [*zoo_cmd, "list"],
        "python -c 'import typer'": [sys.executable, "-c", "import typer"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for cmd in cmds.values():  # warm the page cache
        common.run(cmd)
    for _ in range(rounds):
        for key, cmd in cmds.items():
            times[key].append(common.run(cmd).seconds)
    med = {k: median(v) for k, v in times.items()}
    log("startup: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in med.items()))
    return {"command": " ".join(zoo_cmd), "rounds": rounds, "median_s": med, "all_s": times}


# ---- section 1 -------------------------------------------------------------------------------------------------------


def backends() -> dict[str, Any]:
    from zoo import bench

    out = {}
    for name in MODELS:
        warmup, runs = (2, 7) if name in FAST else (1, 3)
        result = bench.bench(name, size=SIZE, threads=THREADS, warmup=warmup, runs=runs, progress=log)
        out[name] = result.as_dict()
        ratio = result.ratio() or {}
        log(f"{name}: onnx {result.backends['onnx'].inference_ms:.0f} ms, paddle "
            f"{result.backends['paddle'].inference_ms:.0f} ms, ratio {ratio.get('inference')}")  # fmt: skip
    return out


# ---- section 2 -------------------------------------------------------------------------------------------------------


def overhead(work: Path, images: list[Path]) -> dict[str, Any]:
    """zoo's runner.run vs bare session.run (same process, same tensor, interleaved); then zoo run's per-image split."""
    out: dict[str, Any] = {"runner": {}, "cli": {}}
    per_model = work / "overhead-images"
    per_model.mkdir(exist_ok=True)
    for path in images[:3]:
        shutil.copy(path, per_model / path.name)
    for name in MODELS:
        warmup, runs = (2, 10) if name in FAST else (1, 4)
        doc = child("runner-vs-bare", name, SIZE[0], SIZE[1], THREADS, warmup, runs)
        out["runner"][name] = doc
        log(f"{name}: runner {doc['zoo_median_ms']:.1f} ms vs bare {doc['bare_median_ms']:.1f} ms "
            f"(x{doc['zoo_median_ms'] / doc['bare_median_ms']:.3f})")  # fmt: skip
        dest = work / f"run-{name}"
        done = common.run([*_zoo_cmd(), "run", name, str(per_model), "--out", str(dest), "--threads", str(THREADS),
                           "--json"])  # fmt: skip
        summaries = json.loads(done.stdout)
        steady = summaries[1:]  # the first image also pays ORT's first-run setup
        keys = summaries[0]["timings_ms"].keys()
        out["cli"][name] = {
            "images": len(summaries), "wall_s": done.seconds,
            "first_ms": summaries[0]["timings_ms"],
            "median_ms": {k: median([s["timings_ms"][k] for s in steady]) for k in keys},
        }  # fmt: skip
    return out


# ---- section 3 -------------------------------------------------------------------------------------------------------


def make_images(folder: Path, count: int) -> list[Path]:
    """Synthetic street-like JPEGs at SIZE: smooth gradients and shapes plus mild noise (not copied from anywhere)."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    h, w = SIZE
    paths = []
    for i in range(count):
        path = folder / f"frame_{i:03d}.jpg"
        paths.append(path)
        if path.exists():
            continue
        sky = np.linspace(200, 120, h // 2)[:, None, None] * np.array([0.8, 0.9, 1.0])
        road = np.linspace(90, 60, h - h // 2)[:, None, None] * np.array([1.0, 1.0, 1.0])
        img = np.concatenate([np.broadcast_to(sky, (h // 2, w, 3)), np.broadcast_to(road, (h - h // 2, w, 3))])
        img = np.ascontiguousarray(img, dtype=np.float32)
        for _ in range(12):
            x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(h // 4, h - 40))
            x1, y1 = x0 + int(rng.integers(30, 200)), y0 - int(rng.integers(30, 250))
            colour = [float(c) for c in rng.integers(20, 235, 3)]
            cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
        img += rng.normal(0, 6, img.shape).astype(np.float32)
        cv2.imwrite(str(path), np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return paths


def folder(work: Path, images: list[Path]) -> dict[str, Any]:
    dest = work / "folder-out"
    shutil.rmtree(dest, ignore_errors=True)
    doc = child("folder", FOLDER_MODEL, images[0].parent, dest, THREADS, 2)
    bare = sum(doc["bare_seconds"]) / 2
    log(f"folder: zoo pipeline {doc['zoo_seconds']:.1f} s vs bare {bare:.1f} s for {doc['images']} images")
    shutil.rmtree(dest, ignore_errors=True)
    cli = common.run([*_zoo_cmd(), "run", FOLDER_MODEL, str(images[0].parent), "--out", str(dest), "--threads",
                      str(THREADS)])  # fmt: skip
    doc["cli_wall_s"] = cli.seconds
    shutil.rmtree(dest, ignore_errors=True)
    return doc


# ---- section 4 -------------------------------------------------------------------------------------------------------


def node_flops(node: dict[str, Any]) -> tuple[float, bool]:
    """FLOPs (2 per multiply-add) of one Conv/ConvTranspose/MatMul/Gemm node from its profiled shapes; depthwise?"""
    import math

    ins, outs, op = node["inputs"], node["outputs"], node["op"]
    y = math.prod(outs[0])
    if op in ("Conv", "FusedConv"):
        w = ins[1]
        return 2.0 * y * math.prod(w[1:]), w[1] == 1 and ins[0][1] > 1
    if op == "ConvTranspose":
        return 2.0 * math.prod(ins[0]) * math.prod(ins[1][1:]), False
    if op in ("MatMul", "FusedMatMul"):
        return 2.0 * y * ins[0][-1], False
    return 2.0 * y * (math.prod(ins[0]) / outs[0][0]), False  # Gemm: K = |A| / M


def flops(overhead_done: dict[str, Any] | None) -> dict[str, Any]:
    peak = child("peak-conv", THREADS, 5)
    log(f"peak: {peak['peak_gflops_per_s']:.1f} GFLOP/s")
    out: dict[str, Any] = {"peak": peak, "models": {}}
    from zoo import cache

    for name in MODELS:
        path = str(cache.onnx_model_path(name))
        basic = child("profile", path, SIZE[0], SIZE[1], THREADS, "basic")  # graph as converted: true shapes
        total = depthwise = 0.0
        by_kind: dict[str, float] = {}
        for node in basic["flop_nodes"]:
            f, dw = node_flops(node)
            total += f
            depthwise += f if dw else 0.0
            by_kind[node["op"]] = by_kind.get(node["op"], 0.0) + f
        full = child("profile", path, SIZE[0], SIZE[1], THREADS, "all")  # zoo's session options: where time goes
        ms = (overhead_done or {}).get("runner", {}).get(name, {})
        zoo_ms, bare_ms = ms.get("zoo_median_ms") or full["run_ms"], ms.get("bare_median_ms")
        record = {
            "gflop": total / 1e9, "depthwise_gflop": depthwise / 1e9, "gflop_by_op": {k: v / 1e9 for k, v in by_kind.items()},
            "zoo_ms": zoo_ms, "bare_ms": bare_ms, "gflops_per_s": total / 1e9 / (zoo_ms / 1000),
            "bare_gflops_per_s": total / 1e9 / (bare_ms / 1000) if bare_ms else None,
            "profile_run_ms": full["run_ms"], "op_ms": full["op_ms"],
            "conv_nodes": len(basic["flop_nodes"]),
            "conv_ms_all": sum(n["ms"] for n in full["flop_nodes"]),
        }  # fmt: skip
        record["share_of_peak"] = record["gflops_per_s"] / peak["peak_gflops_per_s"]
        out["models"][name] = record
        log(f"{name}: {record['gflop']:.0f} GFLOP, {record['gflops_per_s']:.1f} GFLOP/s "
            f"({record['share_of_peak']:.0%} of peak)")  # fmt: skip
    return out


# ---- section 8 -------------------------------------------------------------------------------------------------------


def rss(work: Path, image: Path) -> dict[str, Any]:
    from zoo import cache

    out = {}
    for name in MODELS:
        dest = work / f"rss-{name}"
        zoo_run = common.run([*_zoo_cmd(), "run", name, str(image), "--out", str(dest), "--threads", str(THREADS)])
        bare = common.run([sys.executable, str(Path(__file__).with_name("bare_ort.py")), str(cache.onnx_model_path(name)),
                           str(image), str(THREADS)])  # fmt: skip
        out[name] = {"zoo_mb": zoo_run.peak_rss_mb, "bare_mb": bare.peak_rss_mb, "zoo_s": zoo_run.seconds,
                     "bare_s": bare.seconds}  # fmt: skip
        log(f"{name}: zoo run {zoo_run.peak_rss_mb:.0f} MB vs bare {bare.peak_rss_mb:.0f} MB")
    return out


# ---- section 6 -------------------------------------------------------------------------------------------------------


def big_onnx(path: Path) -> tuple[str, int]:
    """A valid ~100 MB ONNX model (one 5000x5000 MatMul), so that 'zoo pull' stores it like a real one."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    n = int((PULL_BYTES / 4) ** 0.5)
    weight = np.random.default_rng(0).standard_normal((n, n), np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor("W", TensorProto.FLOAT, [n, n], weight.tobytes(), raw=True)],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(path))
    data = path.read_bytes()
    return "sha256:" + hashlib.sha256(data).hexdigest(), len(data)


def pull(work: Path, rounds: int = 3) -> dict[str, Any]:
    body = work / "big.onnx"
    sha, size = big_onnx(body)
    portfile = work / "server.port"
    portfile.unlink(missing_ok=True)
    server = subprocess.Popen([sys.executable, str(common.CHILD), "serve", str(body), str(portfile)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(300):
            if portfile.exists() and portfile.read_text():
                break
            time.sleep(0.05)
        base = portfile.read_text()
        out: dict[str, Any] = {"bytes": size, "curl": [], "fetch": [], "pull_cli": []}
        dest = work / "curl.bin"
        for i in range(rounds):
            dest.unlink(missing_ok=True)
            done = common.run(["curl", "-s", "-o", str(dest), "-w", "%{time_total} %{size_download}", f"{base}/big.onnx"])
            t, n = done.stdout.split()
            out["curl"].append({"transfer_s": float(t), "wall_s": done.seconds, "bytes": int(float(n))})
            home = work / f"fetch-home-{i}"
            shutil.rmtree(home, ignore_errors=True)
            doc = child("fetch", f"{base}/big.onnx", sha, size, env={"ZOO_HOME": str(home)})
            out["fetch"].append({"seconds": doc["seconds"], "wall_s": doc["child_seconds"]})
            shutil.rmtree(home, ignore_errors=True)
        dest.unlink(missing_ok=True)
        registry = work / "pull-registry.toml"
        registry.write_text(
            "schema = 1\n"
            + "".join(
                f'[models.{key}]\narchitecture = "bisenet"\nnum_classes = 19\n[models.{key}.onnx]\n'
                f'urls = ["{base}/{path}"]\nsha256 = "{sha}"\nsize = {size}\n'
                for key, path in (("bigfile", "big.onnx"), ("cutfile", "cut.onnx"))
            )
        )
        for i in range(rounds):
            home = work / f"pull-home-{i}"
            shutil.rmtree(home, ignore_errors=True)
            done = common.run([*_zoo_cmd(), "--registry", str(registry), "pull", "bigfile", "--format", "onnx", "-q"],
                              env={"ZOO_HOME": str(home)})  # fmt: skip
            out["pull_cli"].append({"wall_s": done.seconds, "peak_rss_mb": done.peak_rss_mb})
            shutil.rmtree(home, ignore_errors=True)
        out["resume"] = resume(work, registry, base)
        return out
    finally:
        server.terminate()
        server.wait(timeout=10)


def resume(work: Path, registry: Path, base: str) -> dict[str, Any]:
    """The server drops the first response at 40%; with no retries the pull fails, and a second pull resumes."""
    import httpx

    home = work / "resume-home"
    shutil.rmtree(home, ignore_errors=True)
    env = {"ZOO_HOME": str(home), "ZOO_RETRIES": "0"}
    cmd = [*_zoo_cmd(), "--registry", str(registry), "pull", "cutfile", "--format", "onnx", "-q"]
    first = common.run(cmd, env=env, check=False)
    partial = sorted((home / "cache" / "blobs").glob(".*.partial"))
    partial_bytes = partial[0].stat().st_size if partial else 0
    second = common.run(cmd, env=env, check=False)
    sent = [s for s in httpx.get(f"{base}/_sent").json() if s["path"] == "/cut.onnx"]
    shutil.rmtree(home, ignore_errors=True)
    return {
        "first_exit": first.returncode, "first_error": first.stderr.strip().splitlines()[-1:],
        "partial_bytes": partial_bytes, "second_exit": second.returncode, "requests": sent,
    }  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
