"""Regenerate BENCHMARKS.md: zoo measured against its baselines on this machine, in one run (run by hand, not in CI).

    python benchmarks/run.py                      # everything (~15-25 min on 2 cores), writes BENCHMARKS.md
    python benchmarks/run.py --home DIR           # reuse (or keep) the scratch ZOO_HOME with the exported models
    python benchmarks/run.py --sections 1,4       # only some sections (the report shows the others as not run)
    python benchmarks/run.py --from-json R.json   # re-render the report from a saved run

The five registry architectures are exported with seeded random weights into a scratch ZOO_HOME (never the user's
cache) and converted with zoo's own converter. Every timing uses 2 threads at 512x1024 unless a section says
otherwise. Progress goes to stderr; the raw numbers are saved as ``results.json`` in the scratch home (with
``--home``) or as ``<scratch>-results.json`` beside it in the temp folder.

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
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import report  # noqa: E402
from common import REPO, child, clean, log, median  # noqa: E402

MODELS = ("bisenet", "fcn", "deeplabv3", "deeplabv3p", "danet")
SIZE = (512, 1024)  # (H, W)
THREADS = 2
FAST = {"bisenet", "fcn"}  # more runs for these; the ResNet-50 models take seconds per image
FOLDER_MODEL, FOLDER_IMAGES = "bisenet", 50
PULL_BYTES = 100_000_000


def main() -> int:
    global MODELS  # --models narrows it for a trial run
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-openvino", action="store_true",
                        help="skip section 1's extra measurement on onnxruntime-openvino (installed into a venv)")
    parser.add_argument("--home", type=Path, help="scratch ZOO_HOME to use and keep (default: a temp dir, removed)")
    parser.add_argument("--sections", default="1,2,3,4,5,6,7,8", help="comma-separated section numbers")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of the five (for trying)")
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md", help="report to write")
    parser.add_argument("--from-json", type=Path, help="render the report from a saved results.json; measure nothing")
    args = parser.parse_args()
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        args.out.write_text(report.render(results), encoding="utf-8")
        log(f"wrote {args.out}")
        return 0
    sections = {int(s) for s in args.sections.split(",") if s.strip()}
    MODELS = tuple(m for m in args.models.split(",") if m in MODELS) or MODELS
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
            (1, "backends", lambda: backends(results["setup"])),
            (1, "openvino", lambda: None if args.no_openvino else openvino(home, work)),
            (2, "overhead", lambda: overhead(work, images)),
            (4, "flops", lambda: flops(results.get("overhead"), results.get("backends"), work)),
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
        # beside the scratch home, so it outlives the home's removal; --from-json renders it again
        saved = home / "results.json" if args.home else home.with_name(home.name + "-results.json")
        saved.write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
        log(f"raw results in {saved}")
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    args.out.write_text(report.render(results), encoding="utf-8")
    log(f"wrote {args.out} in {results['wall_seconds'] / 60:.1f} min")
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
        wanted = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile",
                  "amx_bf16")  # fmt: skip
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
                 "typer"):  # fmt: skip
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


def setup() -> dict[str, Any]:
    """Export each model twice (PIR model.json and legacy model.pdmodel, seeded random weights), convert the legacy one
    (the format PaddleSeg publishes) with zoo, and time both steps. The Paddle ref is left on the legacy export."""
    from zoo.store import cache
    from zoo.make.convert import convert
    from zoo.make.export import export_model

    saved = Path(os.environ["ZOO_HOME"]) / "bench-setup.json"
    if saved.is_file():
        done = json.loads(saved.read_text())
        if set(done["models"]) == set(MODELS) and all("onnx" in cache.cached_formats(m) for m in MODELS):
            log("setup: reusing the exports and conversions in the scratch ZOO_HOME")
            return {**done, "reused": True}
    done = {"models": {}}
    for name in MODELS:
        record: dict[str, Any] = {"paddle": {}}
        for fmt in ("pir", "legacy"):
            log(f"setup {name}: export ({fmt}) with seeded random weights")
            t = time.perf_counter()
            folder = export_model(name, weights="random", seed=0, legacy=fmt == "legacy")
            record[f"export_{fmt}_s"] = round(time.perf_counter() - t, 2)
            record["paddle"][fmt] = {"key": folder.name, **cache.read_manifest(folder)["provenance"]}
        log(f"setup {name}: convert the legacy export to ONNX")
        result = convert(name, force=True)  # a real conversion even if an earlier run left one in this home
        record["convert_s"] = round(result.seconds, 2)
        record["onnx"] = str(result.path)
        record["onnx_mb"] = round(result.path.stat().st_size / 1e6, 1)
        done["models"][name] = record
    saved.write_text(json.dumps(done, indent=1))
    return done


def use_paddle(name: str, fmt: str, setup_done: dict[str, Any]) -> None:
    """Point ``name``'s Paddle ref at its PIR or legacy export."""
    from zoo.store import cache

    cache.set_ref(name, "paddle", {"source": "export", **setup_done["models"][name]["paddle"][fmt]})


def convert_times(setup_done: dict[str, Any]) -> dict[str, Any]:
    """Section 7: the first convert (from setup) and a second, cached one: in-process call and the whole CLI."""
    from zoo.make.convert import convert

    out = {}
    zoo_cmd = _zoo_cmd()
    for name in MODELS:
        calls = [convert(name).seconds for _ in range(3)]
        cli = [common.run([*zoo_cmd, "convert", name]).seconds for _ in range(3)]
        rec = setup_done["models"][name]
        first = None if setup_done.get("reused") else rec.get("convert_s")
        out[name] = {"first_s": first, "cached_call_s": median(calls), "cached_cli_s": median(cli),
                     "export_pir_s": rec.get("export_pir_s"),
                     "export_legacy_s": rec.get("export_legacy_s")}  # fmt: skip
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
    script = zoo_cmd[-1] if len(zoo_cmd) == 1 else "-m zoo"
    imports = {
        "zoo --help": import_times([sys.executable, "-X", "importtime", *script.split(), "--help"]),
        "zoo list": import_times([sys.executable, "-X", "importtime", *script.split(), "list"]),
        "import typer": import_times([sys.executable, "-X", "importtime", "-c", "import typer"]),
    }
    return {"command": " ".join(zoo_cmd), "rounds": rounds, "median_s": med, "all_s": times, "imports": imports}


def import_times(cmd: list[str], top: int = 6) -> dict[str, Any]:
    """``python -X importtime``: total import time, the slowest top-level imports and what each of those imports."""
    done = common.run(cmd)
    top_level, pending = [], []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or "cumulative" in line:
            continue
        name, ms = parts[2][1:], int(parts[1]) / 1000  # the name: one space, then two more per nesting level
        depth = (len(name) - len(name.lstrip(" "))) // 2
        if depth == 1:
            pending.append((name.strip(), round(ms, 1)))
        elif depth == 0:  # importtime lists children before their parent
            children = sorted(pending, key=lambda r: -r[1])[:5]
            top_level.append({"name": name.strip(), "ms": round(ms, 1), "children": children})
            pending = []
    return {"total_ms": round(sum(r["ms"] for r in top_level), 1),
            "slowest": sorted(top_level, key=lambda r: -r["ms"])[:top]}  # fmt: skip


# ---- section 1 -------------------------------------------------------------------------------------------------------


def backends(setup_done: dict[str, Any]) -> dict[str, Any]:
    """zoo bench per model: ONNX Runtime and Paddle on the legacy program, then Paddle on the PIR program.

    If the PIR program runs over twice as slow as the legacy one on a model (zoo's runner without oneDNN for PIR),
    it is not measured on the later, larger models: it cannot be the best Paddle configuration there either.
    """
    from zoo.measure import bench

    out: dict[str, Any] = {}
    skip_pir = ""
    for name in MODELS:
        warmup, runs = (2, 7) if name in FAST else (1, 3)
        use_paddle(name, "legacy", setup_done)
        measure = partial(bench.bench, name, size=SIZE, threads=THREADS, warmup=warmup, runs=runs, progress=log)
        result, noise = clean(f"{name} onnx+paddle", measure)
        both = result.as_dict()
        paddle = {"legacy": both["backends"]["paddle/fp32"], "pir": None}  # rows are keyed backend/precision
        interference = [noise]
        if not skip_pir:
            use_paddle(name, "pir", setup_done)
            try:
                pir, noise = clean(f"{name} paddle PIR", partial(measure, backends=("paddle",)))
                paddle["pir"] = pir.as_dict()["backends"]["paddle/fp32"]
                interference.append(noise)
            finally:
                use_paddle(name, "legacy", setup_done)
            slower = paddle["pir"]["inference_ms"] / paddle["legacy"]["inference_ms"]
            if slower > 2:
                skip_pir = f"PIR ran {slower:.1f}× slower than legacy on {name}; not measured on the later models"
        measured = {k: v for k, v in paddle.items() if v}
        best = min(measured, key=lambda k: measured[k]["inference_ms"])
        onnx = both["backends"]["onnx/fp32"]
        out[name] = {"bench": both, "paddle": paddle, "best_paddle": best, "interference": max(interference),
                     "pir_note": "" if paddle["pir"] else skip_pir,
                     "ratio": onnx["inference_ms"] / paddle[best]["inference_ms"]}  # fmt: skip
        pir_ms = f"{paddle['pir']['inference_ms']:.0f} ms" if paddle["pir"] else "not measured"
        log(f"{name}: onnx {onnx['inference_ms']:.0f} ms, paddle legacy {paddle['legacy']['inference_ms']:.0f} ms, "
            f"PIR {pir_ms}; onnx/best {out[name]['ratio']:.2f}")  # fmt: skip
    return out


OPENVINO_PACKAGE = "onnxruntime-openvino"


def openvino(home: Path, work: Path) -> dict[str, Any]:
    """Section 1, what another execution provider gives: each model's ONNX file on onnxruntime-openvino (its own
    venv, since it replaces the onnxruntime package), in float32 and in bfloat16, with the share of pixels whose
    label matches zoo's runner (ORT's CPU provider, float32) on a synthetic street scene."""
    import numpy as np

    from zoo.runners import runtime
    from zoo.store import cache
    from zoo.synthetic import street_scene

    venv = home / "ov-venv"
    python = venv / "bin" / "python"
    if not python.is_file():
        log(f"openvino: installing {OPENVINO_PACKAGE} into {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", OPENVINO_PACKAGE, "numpy"],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            return {"error": f"pip install {OPENVINO_PACKAGE} failed: {done.stderr.strip().splitlines()[-1:]}"}
    rgb = street_scene(*SIZE, seed=0)
    out: dict[str, Any] = {"package": OPENVINO_PACKAGE, "models": {}}
    for name in MODELS:
        onnx_path = cache.onnx_model_path(name)
        model = runtime.load(name, backend="onnx", threads=THREADS)
        x = model.prepare(rgb)
        reference = model.to_labels(model.infer(x), SIZE)
        del model
        x_path = work / f"ov-{name}-input.npy"
        np.save(x_path, x)
        warmup, runs = (2, 7) if name in FAST else (1, 3)
        record: dict[str, Any] = {}
        for precision in ("f32", "bf16"):
            labels, result = work / f"ov-{name}-{precision}.npy", work / f"ov-{name}-{precision}.json"

            def measure(precision: str = precision, labels: Path = labels, result: Path = result) -> dict[str, Any]:
                common.run([str(python), str(common.HERE / "ov_ep.py"), str(onnx_path), str(x_path), str(THREADS),
                            precision, str(warmup), str(runs), str(labels), str(result)])  # fmt: skip
                return json.loads(result.read_text(encoding="utf-8"))

            doc, noise = clean(f"{name} openvino {precision}", measure)
            got = np.load(labels)
            doc["inference_ms"] = median(doc["ms"])
            same_size = got.size == reference.size
            doc["agreement"] = float((got.reshape(reference.shape) == reference).mean()) if same_size else None
            doc["interference"] = noise
            record[precision] = doc
            log(f"{name}: onnxruntime-openvino {precision} {doc['inference_ms']:.0f} ms, labels agree with ORT CPU "
                f"on {doc['agreement']:.2%} of pixels")  # fmt: skip
        out["models"][name] = record
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
        warmup, runs = (2, 10) if name in FAST else (1, 6)
        measure = partial(child, "runner-vs-bare", name, SIZE[0], SIZE[1], THREADS, warmup, runs)
        doc, noise = clean(f"{name} runner vs bare", measure)
        doc["interference"] = noise
        out["runner"][name] = doc
        log(f"{name}: runner {doc['zoo_median_ms']:.1f} ms vs bare {doc['bare_median_ms']:.1f} ms "
            f"(paired x{doc['paired_ratio']:.3f})")  # fmt: skip
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
    """Street-like JPEGs at SIZE drawn by zoo.synthetic (one seed per image), written here, copied from nowhere."""
    import cv2

    from zoo.synthetic import street_scene

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"frame_{i:03d}.jpg"
        paths.append(path)
        if not path.exists():
            rgb = street_scene(SIZE[0], SIZE[1], seed=i)
            cv2.imwrite(str(path), rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    return paths


def folder(work: Path, images: list[Path]) -> dict[str, Any]:
    dest = work / "folder-out"
    shutil.rmtree(dest, ignore_errors=True)
    doc, noise = clean("folder", lambda: child("folder", FOLDER_MODEL, images[0].parent, dest, THREADS, 2))
    doc["interference"] = noise
    bare, zoo = sum(doc["bare_seconds"]) / 2, sum(doc["zoo_seconds"]) / 2
    log(f"folder: zoo pipeline {zoo:.1f} s vs bare {bare:.1f} s for {doc['images']} images")
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


def conv_configs(onnx_path: str, nodes: list[dict[str, Any]], cover: float = 0.85, limit: int = 10) -> dict[str, Any]:
    """The model's distinct convolution shapes (from the basic-level profile and the graph's attributes), largest
    total FLOPs first, until they cover ``cover`` of the convolution FLOPs or ``limit`` shapes."""
    import onnx
    from onnx import helper

    model = onnx.load(onnx_path, load_external_data=False)
    attrs = {n.name: {a.name: helper.get_attribute_value(a) for a in n.attribute}
             for n in model.graph.node if n.op_type == "Conv"}  # fmt: skip
    shapes: dict[tuple, dict[str, Any]] = {}
    total = 0.0
    for node in nodes:
        if node["op"] != "Conv" or node.get("name") not in attrs:
            continue
        a, (x, w) = attrs[node["name"]], node["inputs"][:2]
        f, _ = node_flops(node)
        total += f
        config = {"cin": x[1], "cout": w[0], "k": [w[2], w[3]], "h": x[2], "w": x[3],
                  "stride": list(a.get("strides", [1, 1]))[0], "dilation": list(a.get("dilations", [1, 1]))[0],
                  "pads": list(a.get("pads", [0, 0, 0, 0])), "group": int(a.get("group", 1))}  # fmt: skip
        key = json.dumps(config, sort_keys=True)
        entry = shapes.setdefault(key, {**config, "count": 0, "gflop": 0.0})
        entry["count"] += 1
        entry["gflop"] += f / 1e9
    picked, covered = [], 0.0
    for entry in sorted(shapes.values(), key=lambda e: -e["gflop"]):
        if covered >= cover * total / 1e9 or len(picked) >= limit:
            break
        picked.append(entry)
        covered += entry["gflop"]
    return {"configs": picked, "cover": covered / (total / 1e9) if total else 0.0}


def layer_compare(name: str, basic_nodes: list[dict[str, Any]], work: Path) -> dict[str, Any]:
    """Section 4's look inside the ORT-vs-Paddle gap: the model's main convolution shapes one at a time."""
    from zoo.store import cache

    chosen = conv_configs(str(cache.onnx_model_path(name)), basic_nodes)
    configs = work / f"layers-{name}.json"
    configs.write_text(json.dumps(chosen["configs"]))
    doc, noise = clean("layer by layer", lambda: child("layer-compare", configs, THREADS, 3,
                                                        env={"FLAGS_enable_pir_api": "0"}))  # fmt: skip
    return {"model": name, "cover": chosen["cover"], "layers": doc["layers"], "interference": noise}


def flops(overhead_done: dict[str, Any] | None, backends_done: dict[str, Any] | None, work: Path) -> dict[str, Any]:
    peak, noise = clean("peak conv", lambda: child("peak-conv", THREADS, 5))
    paddle, noise2 = clean("paddle conv", lambda: child("paddle-conv", THREADS, 5, env={"FLAGS_enable_pir_api": "0"}))
    peak["interference"], paddle["interference"] = noise, noise2
    log(f"peak: ORT {peak['peak_gflops_per_s']:.1f} GFLOP/s, Paddle {paddle['best_gflops_per_s']:.1f} GFLOP/s")
    out: dict[str, Any] = {"peak": peak, "paddle_conv": paddle, "models": {}}
    from zoo.store import cache

    basics = {}
    for name in MODELS:
        path = str(cache.onnx_model_path(name))
        basic = child("profile", path, SIZE[0], SIZE[1], THREADS, "basic")  # graph as converted: true shapes
        basics[name] = basic["flop_nodes"]
        total = depthwise = 0.0
        by_kind: dict[str, float] = {}
        for node in basic["flop_nodes"]:
            f, dw = node_flops(node)
            total += f
            depthwise += f if dw else 0.0
            by_kind[node["op"]] = by_kind.get(node["op"], 0.0) + f
        full, noise = clean(f"{name} profile", lambda p=path: child("profile", p, SIZE[0], SIZE[1], THREADS, "all"))
        paths: dict[str, dict[str, float]] = {}
        plain_channels: dict[int, int] = {}
        for node in full["flop_nodes"]:  # shapes as ORT ran them: NCHWc channels are padded to the block size
            f, _ = node_flops(node)
            path_name = "nchwc" if node["nchwc"] else "nchw"
            agg = paths.setdefault(path_name, {"nodes": 0, "ms": 0.0, "gflop": 0.0})
            agg["nodes"] += 1
            agg["ms"] += node["ms"]
            agg["gflop"] += f / 1e9
            if not node["nchwc"] and node["op"] in ("Conv", "FusedConv"):
                cin = node["inputs"][1][1]
                plain_channels[cin] = plain_channels.get(cin, 0) + 1
        ms = (overhead_done or {}).get("runner", {}).get(name, {})
        zoo_ms = ms.get("zoo_median_ms") or full["run_ms"]
        bare_ms = zoo_ms / ms["paired_ratio"] if ms.get("paired_ratio") else None  # paired: drift cancels
        record = {
            "gflop": total / 1e9, "depthwise_gflop": depthwise / 1e9,
            "gflop_by_op": {k: v / 1e9 for k, v in by_kind.items()},
            "zoo_ms": zoo_ms, "bare_ms": bare_ms, "gflops_per_s": total / 1e9 / (zoo_ms / 1000),
            "bare_gflops_per_s": total / 1e9 / (bare_ms / 1000) if bare_ms else None,
            "profile_run_ms": full["run_ms"], "op_ms": full["op_ms"],
            "conv_nodes": len(basic["flop_nodes"]), "paths": paths, "plain_in_channels": plain_channels,
            "interference": noise,
            "executed_gflop": sum(p["gflop"] for p in paths.values()),
            "conv_ms_all": sum(n["ms"] for n in full["flop_nodes"]),
        }  # fmt: skip
        record["share_of_peak"] = record["gflops_per_s"] / peak["peak_gflops_per_s"]
        out["models"][name] = record
        log(f"{name}: {record['gflop']:.0f} GFLOP, {record['gflops_per_s']:.1f} GFLOP/s "
            f"({record['share_of_peak']:.0%} of peak)")  # fmt: skip
    worst = max(backends_done, key=lambda n: backends_done[n]["ratio"]) if backends_done else MODELS[-1]
    if worst in basics:
        log(f"layer by layer: {worst}'s main convolution shapes on ORT and Paddle")
        out["layer_compare"] = layer_compare(worst, basics[worst], work)
    return out


# ---- section 8 -------------------------------------------------------------------------------------------------------


def rss(work: Path, image: Path) -> dict[str, Any]:
    from zoo.store import cache

    out = {}
    for name in MODELS:
        dest = work / f"rss-{name}"
        zoo_run = common.run([*_zoo_cmd(), "run", name, str(image), "--out", str(dest), "--threads", str(THREADS)],
                             rss=True)  # fmt: skip
        bare_script = Path(__file__).with_name("bare_ort.py")
        bare = common.run([sys.executable, str(bare_script), str(cache.onnx_model_path(name)), str(image),
                           str(THREADS)], rss=True)  # fmt: skip
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


def pull(work: Path, rounds: int = 5) -> dict[str, Any]:
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
            done = common.run(["curl", "-s", "-o", str(dest), "-w", "%{time_total} %{size_download}",
                               f"{base}/big.onnx"])  # fmt: skip
            t, n = done.stdout.split()
            out["curl"].append({"transfer_s": float(t), "wall_s": done.seconds, "bytes": int(float(n))})
            home = work / f"fetch-home-{i}"
            shutil.rmtree(home, ignore_errors=True)
            doc = child("fetch", f"{base}/big.onnx", sha, size, env={"ZOO_HOME": str(home)})
            out["fetch"].append({"seconds": doc["seconds"], "wall_s": doc["child_seconds"]})
            shutil.rmtree(home, ignore_errors=True)
            plain = child("fetch-plain", f"{base}/big.onnx", dest)
            out.setdefault("plain_python", []).append({"seconds": plain["seconds"]})
        dest.unlink(missing_ok=True)
        home = work / "fetch-home-profiled"
        out["fetch_profiled"] = child("fetch", f"{base}/big.onnx", sha, size, "1", env={"ZOO_HOME": str(home)})
        shutil.rmtree(home, ignore_errors=True)
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
                              env={"ZOO_HOME": str(home)}, rss=True)  # fmt: skip
            out["pull_cli"].append({"wall_s": done.seconds, "peak_rss_mb": done.peak_rss_mb})
            shutil.rmtree(home, ignore_errors=True)
        out["resume"] = resume(work, registry, base)
        return out
    finally:
        server.terminate()
        server.wait(timeout=10)


def resume(work: Path, registry: Path, base: str) -> dict[str, Any]:
    """The server drops the first response at 40%; with no retries the pull fails, and a second pull resumes."""
    import urllib.request

    home = work / "resume-home"
    shutil.rmtree(home, ignore_errors=True)
    env = {"ZOO_HOME": str(home), "ZOO_RETRIES": "0"}
    cmd = [*_zoo_cmd(), "--registry", str(registry), "pull", "cutfile", "--format", "onnx", "-q"]
    first = common.run(cmd, env=env, check=False)
    partial = sorted((home / "cache" / "blobs").glob(".*.partial"))
    partial_bytes = partial[0].stat().st_size if partial else 0
    second = common.run(cmd, env=env, check=False)
    with urllib.request.urlopen(f"{base}/_sent") as response:
        sent = [s for s in json.load(response) if s["path"] == "/cut.onnx"]
    shutil.rmtree(home, ignore_errors=True)
    return {
        "first_exit": first.returncode, "first_error": first.stderr.strip().splitlines()[-1:],
        "partial_bytes": partial_bytes, "second_exit": second.returncode, "requests": sent,
    }  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
