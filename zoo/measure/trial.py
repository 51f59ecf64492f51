"""One candidate configuration of ``zoo tune``, measured in a process of its own (``python -m zoo.measure.trial``).

The child loads the model with :func:`zoo.runners.runtime.load` — the path ``zoo run`` takes — with the candidate's
backend, precision, threads and runner options. With ``outputs_out`` it first saves the runner's raw output for each
verification image (the same preprocessed tensors ``zoo verify`` feeds, from :func:`zoo.measure.inputs.inputs`), so
the parent can judge it with the comparison code ``zoo verify`` uses. Then it times ``warmup`` + ``runs`` images of
:meth:`~zoo.runners.runtime.Model.predict`'s three stages on the first image, as ``zoo bench`` does.

:class:`Interference` measures how much of the CPUs other processes took meanwhile (the quiet-machine check of
``benchmarks/``): other work only ever adds time, so tune ranks candidates by their fastest image and reports it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Timing:
    """What one child measured (or why it could not)."""

    ms: tuple[float, ...] = ()  # latency of each timed image: preprocess + inference + postprocess
    inference_ms: tuple[float, ...] = ()  # the runner's run(x) alone, per timed image
    load_ms: float = 0.0  # opening the model
    described: dict[str, Any] | None = None  # the runner's describe(): what actually ran
    outputs: str | None = None  # .npz of raw outputs per verification image, when asked for
    others: float = 0.0  # largest share of the CPUs other processes took while it ran
    error: str | None = None  # why the candidate could not run


class Interference:
    """The share of the machine's CPU time other processes (and the hypervisor's steal) took during a block."""

    def __enter__(self) -> Interference:
        self._wall, self._busy, self._mine = time.monotonic(), _machine_busy(), _own_cpu()
        self.share = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self._wall
        busy, steal = _machine_busy()
        others = (busy - self._busy[0]) - (_own_cpu() - self._mine) + (steal - self._busy[1])
        self.share = max(others, 0.0) / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0


def _machine_busy() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot (Linux /proc/stat; zeros elsewhere)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / tick, steal / tick


def _own_cpu() -> float:
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def wait_quiet(limit: float, threshold: float = 0.15) -> float:
    """Wait (at most ``limit`` s) until other processes use under ``threshold`` of the CPUs; the share last seen."""
    deadline, share = time.monotonic() + limit, 0.0
    while True:
        with Interference() as probe:
            time.sleep(0.5)
        share = probe.share
        if share < threshold or time.monotonic() >= deadline:
            return share
        time.sleep(1.0)


def run_trial(job: dict[str, Any], workdir: Path) -> Timing:
    """Run one candidate in a fresh interpreter; its numbers (or error) come back through a JSON file."""
    out = workdir / f"trial-{job['tag']}.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("GLOG_minloglevel", "2")  # paddle's glog chatter
    with Interference() as seen:
        proc = subprocess.run([sys.executable, "-m", "zoo.measure.trial", json.dumps(job), str(out)],
                              env=env, capture_output=True, text=True, check=False)  # fmt: skip
    try:
        doc = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:]) or "no output"
        doc = {"error": f"the process exited {proc.returncode} without a result: {tail}"}
    return Timing(ms=tuple(doc.get("ms", ())), inference_ms=tuple(doc.get("inference_ms", ())),
                  load_ms=float(doc.get("load_ms", 0.0)), described=doc.get("described"),
                  outputs=doc.get("outputs"), others=round(seen.share, 3), error=doc.get("error"))  # fmt: skip


# ---- the child ------------------------------------------------------------------------------------------------------


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """Load the candidate, save its outputs on the verification images (if asked), time it; a JSON-able dict."""
    import numpy as np

    from zoo.measure.inputs import inputs
    from zoo.registry import catalog
    from zoo.runners import runtime

    handle = catalog.resolve(job["name"])
    started = time.perf_counter()
    model = runtime.load(handle, backend=job["backend"], precision=job["precision"], threads=job.get("threads"),
                         options=job.get("options") or None)  # fmt: skip
    load_ms = (time.perf_counter() - started) * 1000.0
    images = list(inputs(job.get("images"), tuple(job["size"]), job["count"], job["seed"]))
    doc: dict[str, Any] = {"load_ms": round(load_ms, 1), "described": model.runner.describe()}
    if job.get("outputs_out"):
        outputs = {}
        for index, (_label, rgb) in enumerate(images):
            x = runtime.preprocess(rgb, handle.architecture.input)  # what verify feeds both backends
            outputs[f"image{index}"] = model.runner.run(x)
        np.savez(job["outputs_out"], **outputs)
        doc["outputs"] = job["outputs_out"]
    rgb = images[0][1]
    hw = (rgb.shape[0], rgb.shape[1])
    ms, inference = [], []
    for i in range(job["warmup"] + job["runs"]):
        t0 = time.perf_counter()
        x = model.prepare(rgb)
        t1 = time.perf_counter()
        output = model.infer(x)
        t2 = time.perf_counter()
        model.to_labels(output, hw)
        t3 = time.perf_counter()
        if i >= job["warmup"]:
            ms.append(round((t3 - t0) * 1000.0, 3))
            inference.append(round((t2 - t1) * 1000.0, 3))
    doc.update(ms=ms, inference_ms=inference)
    return doc


def _child(argv: list[str]) -> int:
    """``python -m zoo.measure.trial JOB_JSON RESULT_PATH``: write the measurement or ``{"error"}``."""
    import warnings

    warnings.filterwarnings("ignore")  # the parent reports per candidate; library chatter would only interleave
    job, out = json.loads(argv[0]), Path(argv[1])
    try:
        from zoo.registry import catalog

        catalog.use_registries([Path(p) for p in job.get("registries", [])])
        doc = measure(job)
    except ZooError as exc:
        doc = {"error": " ".join(str(exc).split())}
    except Exception as exc:  # an engine's own failure (a pass that breaks on this program): the table says which
        doc = {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
    out.write_text(json.dumps(doc, default=str), encoding="utf-8")
    return 0


def scratch() -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for the children's results and outputs."""
    return tempfile.TemporaryDirectory(prefix="zoo-tune-")


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
