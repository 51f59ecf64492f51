"""``zoo tune``: measure every configuration the installed backends can run for a model, prove each against float32
Paddle Inference, and keep the fastest that passes as the model's default on this machine.

:func:`plan` lists the candidates — backend × the precisions it declares × thread counts × the runner options that
trade CPU for latency (ONNX Runtime's intra-op spinning) — and the reduced-precision variants to make first;
:meth:`Plan.execute` measures them. Each candidate runs in a process of its own (:mod:`zoo.measure.trial`), all of
them interleaved in ``rounds`` (ABC… then …CBA, as ``benchmarks/`` does, because this kind of machine drifts), each
after a bounded wait for a quiet machine, with the share of the CPUs other processes took recorded beside it. Other
work only ever adds time, so candidates are ranked by their fastest image.

The verdict on a candidate is :mod:`zoo.measure.compare`'s, exactly as ``zoo verify`` reaches it: the runner's raw
output on each verification image (the same seeded synthetic scenes, or ``images``) against float32 Paddle's,
per image with :func:`~zoo.measure.verify.tolerance_for` the candidate's precision and ``min_agreement``, combined
over the images. With ``data``, the eval mIoU drop (points) must also stay within ``max_miou_drop``. The fastest
candidate that passes is chosen; if no reduced-precision one passes, a float32 one is, and every row says why.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from zoo.errors import BackendError, NotCachedError, QuantizationError, ZooError
from zoo.measure import tune_mixed
from zoo.measure.verify import DEFAULT_MIN_AGREEMENT, reference_pair
from zoo.store.tuned import Choice

if TYPE_CHECKING:
    from zoo.registry.catalog import ModelHandle

DEFAULT_MAX_MIOU_DROP = 0.1  # mIoU points, when labelled data is given
BUSY = 0.25  # others' share of the CPUs above which the timings (not the verdicts) are flagged as unreliable
CALIB_IMAGES = 8  # synthetic calibration scenes for an int8 variant tune has to make
VARIANT_PRECISIONS = ("int8", "fp16")  # precisions that run a variant file of their own (made before measuring)
# Left out unless asked for (--precision fp16): ONNX Runtime's CPU provider gains nothing from it (bisenet, first tune
# here: fp16 111 ms vs fp32 108), so it would spend a tenth of the 5-minute budget on a candidate that cannot win.
OPT_IN = ("fp16",)


@dataclass
class Row:
    """One candidate: its numbers and its verdict."""

    choice: Choice
    reference: bool = False  # the float32 Paddle row every other is judged against
    ms: list[float] = field(default_factory=list)  # every timed image, all rounds (ms)
    inference_ms: list[float] = field(default_factory=list)  # the runner's run(x) alone
    load_ms: float | None = None
    others: float = 0.0  # the largest share of the CPUs other processes took while it was measured
    described: dict[str, Any] | None = None  # what actually ran (runner.describe())
    agreement: float | None = None  # label agreement with float32 Paddle over the verification images
    passed: bool | None = None  # the comparison's verdict (zoo verify's), and the mIoU drop when data is given
    verdict: str | None = None  # zoo verify's one-line summary of the comparison
    miou: float | None = None  # eval mIoU (percent), with data
    miou_drop: float | None = None  # float32 Paddle's mIoU minus this one, in points
    error: str | None = None  # why it could not run
    why: str = ""  # why it was (not) chosen
    chosen: bool = False
    note: str = ""  # how tune came to it (the f32 layers a search found)

    @property
    def fastest(self) -> float | None:  # other work only adds time: the fastest image is the least disturbed
        return min(self.ms) if self.ms else None

    @property
    def p50(self) -> float | None:
        import statistics
        return float(statistics.median(self.ms)) if self.ms else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.choice.as_dict(), "reference": self.reference, "fastest_ms": self.fastest, "p50_ms": self.p50,
            "ms": self.ms, "inference_ms": self.inference_ms, "load_ms": self.load_ms, "others_share": self.others,
            "agreement": self.agreement, "passed": self.passed, "verdict": self.verdict, "miou": self.miou,
            "miou_drop": self.miou_drop, "error": self.error, "chosen": self.chosen, "why": self.why, "note": self.note,
            "ran": {k: (self.described or {}).get(k) for k in ("engine", "version", "precision", "threads", "options")},
        }  # fmt: skip


@dataclass(frozen=True)
class Criteria:
    """How candidates are measured and judged."""

    size: tuple[int, int] = (512, 1024)  # (H, W) of the synthetic verification images
    images: tuple[str, ...] = ()  # the user's images instead of synthetic ones
    count: int = 2  # synthetic verification images (zoo verify's default)
    seed: int = 0  # their seed (zoo verify's default)
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    max_miou_drop: float = DEFAULT_MAX_MIOU_DROP  # points; used only with data
    data: str | None = None  # labelled data for the mIoU drop
    rounds: int = 2  # interleaved rounds, the order reversed every other round
    warmup: int = 1  # untimed images per process
    runs: int = 3  # timed images per process
    quiet_wait: float = 2.0  # seconds to wait, at most, for a quiet machine before each process

    def as_dict(self) -> dict[str, Any]:
        return {"size": list(self.size), "images": list(self.images), "count": self.count, "seed": self.seed,
                "min_agreement": self.min_agreement, "max_miou_drop": self.max_miou_drop if self.data else None,
                "data": self.data, "rounds": self.rounds, "warmup": self.warmup, "runs": self.runs}  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """What a tune will do, before it does it (``zoo tune --dry-run`` prints it)."""

    handle: ModelHandle
    candidates: tuple[Choice, ...]  # the reference first
    make: tuple[str, ...]  # precisions whose variant file is made first (int8, fp16)
    criteria: Criteria

    def describe(self) -> list[str]:
        c = self.criteria
        lines = [f"{len(self.candidates)} candidates × {c.rounds} rounds, each in its own process "
                 f"({c.warmup} warm-up + {c.runs} timed images at {c.size[0]}x{c.size[1]})"]  # fmt: skip
        lines += [f"make the onnx-{p} variant first" for p in self.make]
        searchable = sorted({f"{ch.backend}/{ch.precision}" for ch in self.candidates
                             if not ch.options and tune_mixed.search_of(ch.backend, ch.precision)})
        lines += [f"if {key} falls short of {c.min_agreement:.2%} of the labels, search for layers to keep in f32 "
                  "(a candidate more)" for key in searchable]  # fmt: skip
        if not any(ch.precision in OPT_IN for ch in self.candidates):
            lines.append(f"left out: {', '.join(OPT_IN)} (no faster on CPUs; add it with --precision)")
        lines += [f"  {ch.key}{' (reference)' if i == 0 else ''}" for i, ch in enumerate(self.candidates)]
        return lines

    def execute(self, progress: Callable[[str], None] | None = None) -> TuneResult:
        """Measure and judge every candidate, choose, store the record; the result with every row."""
        return _execute(self, progress or (lambda line: None))


@dataclass(frozen=True)
class TuneResult:
    name: str
    rows: tuple[Row, ...]
    chosen: Row
    criteria: Criteria
    seconds: float
    record: dict[str, Any]  # what was stored (zoo.store.tuned)
    record_path: str

    def summary(self) -> str:
        """``fcn: openvino/bf16 t2, tuned 2026-12-05: 0.41× float32 Paddle, 99.70% labels (14 candidates, 212 s)``."""
        from zoo.registry import tuning

        rec = tuning.status(self.name)[0]
        head = rec.summary() if rec else self.chosen.choice.key
        text = f"{self.name}: {head} ({len(self.rows)} candidates, {self.seconds:.0f} s)"
        busy = self.record["summary"].get("others_max", 0.0)
        if busy > BUSY:
            text += (f"; other processes took up to {busy:.0%} of the CPUs while it measured, so the ranking may not "
                     f"hold on a quiet machine: run 'zoo tune {self.name}' again when it is quiet")  # fmt: skip
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "chosen": self.chosen.as_dict(), "summary": self.summary(),
                "criteria": self.criteria.as_dict(), "seconds": round(self.seconds, 1),
                "candidates": [r.as_dict() for r in self.rows], "record": self.record_path,
                "fingerprint": self.record["fingerprint"]}  # fmt: skip


def plan(model: ModelHandle | str, *, backends: tuple[str, ...] = (), precisions: tuple[str, ...] = (),
         threads: tuple[int, ...] = (), criteria: Criteria | None = None) -> Plan:  # fmt: skip
    """The candidates for ``model``: every usable CPU backend (or ``backends``) × each precision it declares (or
    ``precisions``) × ``threads`` (default: one per core) × runner options; float32 Paddle always, as the reference."""
    from zoo.registry import backends as registered, catalog
    from zoo.store import cache

    handle = catalog.handle(model)
    crit = criteria or Criteria()
    if not 0.0 < crit.min_agreement <= 1.0:
        raise ZooError(f"--min-agreement must be in (0, 1], got {crit.min_agreement}")
    for name in backends:
        registered.get(name)  # BackendError: unknown, or cannot run here
    counts = tuple(dict.fromkeys(threads)) or (os.cpu_count() or 1,)
    found: list[Choice] = []
    for plugin in registered.discover():
        spec = plugin.backend
        if not plugin.usable or spec is None or "cpu" not in spec.devices or (backends and spec.name not in backends):
            continue
        if "onnx" not in spec.formats and "paddle" not in spec.formats:
            continue  # zoo caches nothing else it could run
        tunable = _tunable(spec)
        for precision in spec.precisions:
            if (precisions and precision not in precisions) or (not precisions and precision in OPT_IN):
                continue
            for n in counts:
                found.append(Choice(spec.name, precision, n))
                found += [Choice(spec.name, precision, n, tuple(sorted(o.items()))) for o in tunable]
    reference = Choice(*reference_pair(), counts[0])  # the judge must be able to run
    cache.paddle_model_dir(handle.name)  # NotCachedError: what to pull
    ordered = [reference] + [c for c in found if c != reference]
    if not found and (backends or precisions):
        raise BackendError(f"no backend runs {', '.join(precisions) or 'anything'} among {', '.join(backends) or 'those installed'}; "
                           "see 'zoo plugins' for what each runs")  # fmt: skip
    make = tuple(p for p in VARIANT_PRECISIONS if any(c.precision == p and _runs_onnx(c.backend) for c in ordered))
    return Plan(handle, tuple(ordered), make, crit)


def _tunable(spec: Any) -> list[dict[str, Any]]:
    """Runner option sets worth measuring besides the defaults: the runner module's ``TUNE_OPTIONS``, if any (ONNX
    Runtime: spinning on — faster alone, costlier beside other work)."""
    import importlib

    return list(getattr(importlib.import_module(spec.runner.partition(":")[0]), "TUNE_OPTIONS", ()))


def _runs_onnx(backend: str) -> bool:
    from zoo.registry import backends as registered
    return "onnx" in registered.get(backend).formats


def _execute(p: Plan, progress: Callable[[str], None]) -> TuneResult:
    from zoo.make import ensure
    from zoo.measure import trial
    from zoo.registry import catalog

    started = time.perf_counter()
    handle, crit, name = p.handle, p.criteria, p.handle.name
    rows = [Row(c, reference=(i == 0)) for i, c in enumerate(p.candidates)]
    if any(_runs_onnx(c.backend) for c in p.candidates):
        ensure.ensure(handle, "onnx", progress=lambda line: progress(f"tune {name}: {line}"))
    for precision in p.make:
        progress(f"tune {name}: making the onnx-{precision} variant")
        try:
            ensure.variant(handle, precision, crit.size, CALIB_IMAGES if precision == "int8" else 0)
        except (QuantizationError, BackendError, NotCachedError) as exc:
            for row in rows:
                if row.choice.precision == precision and _runs_onnx(row.choice.backend):
                    row.error = f"could not make the onnx-{precision} variant: {exc}"
    for after, sibling, note in tune_mixed.siblings([r.choice for r in rows if not r.error], handle, crit.size,
                                                    crit.count, crit.min_agreement, _judge_of(handle, crit),
                                                    progress):  # fmt: skip
        rows.insert(next(i for i, r in enumerate(rows) if r.choice == after) + 1, Row(sibling, note=note))
    registries = [str(path) for path in catalog.extra_registries()]
    total = len(rows) * crit.rounds
    outputs: dict[int, str] = {}
    with trial.scratch() as tmp:
        step = 0
        for r in range(crit.rounds):
            order = list(range(len(rows))) if r % 2 == 0 else list(reversed(range(len(rows))))
            for i in order:
                row = rows[i]
                step += 1
                if row.error:
                    continue
                trial.wait_quiet(crit.quiet_wait)
                c = row.choice
                job = {"name": name, "backend": c.backend, "precision": c.precision, "threads": c.threads,
                       "options": dict(c.options), "size": list(crit.size), "images": list(crit.images) or None,
                       "count": crit.count, "seed": crit.seed, "warmup": crit.warmup, "runs": crit.runs,
                       "registries": registries, "tag": f"{i}-{r}",
                       "outputs_out": str(Path(tmp) / f"out-{i}.npz") if r == 0 else None}  # fmt: skip
                t = trial.run_trial(job, Path(tmp))
                if t.error:
                    row.error = t.error
                    progress(f"tune {name}: [{step}/{total}] {c.key}: failed — {t.error[:160]}")
                    continue
                row.ms += t.ms
                row.inference_ms += t.inference_ms
                row.load_ms = t.load_ms if row.load_ms is None else min(row.load_ms, t.load_ms)
                row.others = max(row.others, t.others)
                row.described = row.described or t.described
                if t.outputs:
                    outputs[i] = t.outputs
                progress(f"tune {name}: [{step}/{total}] {c.key}: fastest {min(t.ms):,.0f} ms "
                         f"(others took {t.others:.0%} of the CPUs)")  # fmt: skip
        _judge(rows, outputs, handle, crit)
    if crit.data:
        _judge_miou(rows, handle, crit, progress)
    chosen = _choose(rows, crit)
    record = _record(name, rows, chosen, crit)
    from zoo.store import tuned

    where = tuned.write(name, record)
    return TuneResult(name, tuple(rows), chosen, crit, time.perf_counter() - started, record, str(where))


def _comparisons(handle: ModelHandle,
                 crit: Criteria) -> Callable[[str, list[Any], list[Any]], tuple[Any, list[Any]]]:  # fmt: skip
    """``(precision, references, outputs) → (tolerance, per-image comparisons)``: zoo verify's, at tune's
    threshold."""
    from zoo.measure.compare import compare
    from zoo.measure.verify import tolerance_for

    def comparisons(precision: str, refs: list[Any], outs: list[Any]) -> tuple[Any, list[Any]]:
        tol = tolerance_for(precision, crit.min_agreement)
        return tol, [compare(a, b, tol, handle.architecture.labels) for a, b in zip(refs, outs)]

    return comparisons


def _judge_of(handle: ModelHandle, crit: Criteria) -> Callable[[str], Callable[[list[Any], list[Any]], float]]:
    """For a precision: the worst image's label agreement, as :func:`_judge` compares (the f32-layer search's aim)."""
    each = _comparisons(handle, crit)
    return lambda precision: lambda refs, outs: min(c.agreement for c in each(precision, refs, outs)[1])


def _judge(rows: list[Row], outputs: dict[int, str], handle: ModelHandle, crit: Criteria) -> None:
    """Each candidate's outputs against the reference's, per image and combined, as zoo verify judges them."""
    import numpy as np

    from zoo.measure.compare import combine

    if 0 not in outputs:
        why = rows[0].error or "it gave no outputs"
        raise BackendError(f"float32 Paddle Inference, which tune judges every candidate against, could not run "
                           f"'{handle.name}': {why}; check it with 'zoo run {handle.name} IMAGE --backend paddle'")  # fmt: skip
    with np.load(outputs[0]) as ref_file:
        reference = [ref_file[k] for k in sorted(ref_file.files, key=lambda k: int(k[5:]))]
    each = _comparisons(handle, crit)
    for i, row in enumerate(rows):
        if i not in outputs:
            continue
        with np.load(outputs[i]) as f:
            got = [f[k] for k in sorted(f.files, key=lambda k: int(k[5:]))]
        tol, comparisons = each(row.choice.precision, reference, got)
        overall = combine(comparisons, tol)
        row.agreement, row.verdict = overall.agreement, overall.summary(tol)
        row.passed = all(c.passed for c in comparisons)


def _judge_miou(rows: list[Row], handle: ModelHandle, crit: Criteria, progress: Callable[[str], None]) -> None:
    """The eval mIoU of each configuration that passed on labels, and its drop from float32 Paddle's. Options that
    only trade CPU for latency (a runner's TUNE_OPTIONS) share one evaluation; others (f32 layers) get their own."""
    from zoo.measure.evaluation import evaluate
    from zoo.registry import backends as registered
    from zoo.runners import runtime

    def key_of(c: Choice) -> tuple[str, str, tuple[Any, ...]]:
        latency = {k for o in _tunable(registered.get(c.backend)) for k in o}
        return c.backend, c.precision, tuple(sorted((k, v) for k, v in dict(c.options).items() if k not in latency))

    scores: dict[tuple[str, str, tuple[Any, ...]], float] = {}
    for row in rows:
        key = key_of(row.choice)
        if not (row.passed or row.reference) or key in scores:
            continue
        progress(f"tune {handle.name}: eval {row.choice.key} on {crit.data}")
        model = runtime.load(handle, backend=key[0], precision=key[1], threads=row.choice.threads,
                             options=dict(key[2]) or None)  # fmt: skip
        result = evaluate([model], crit.data)
        scores[key] = float(next(iter(result.backends.values()))["miou"]) * 100.0
    base = scores.get((*reference_pair(), ()))
    for row in rows:
        score = scores.get(key_of(row.choice))
        if score is None or base is None:
            continue
        row.miou, row.miou_drop = round(score, 4), round(base - score, 4)
        if row.passed and row.miou_drop > crit.max_miou_drop:
            row.passed = False


def _choose(rows: list[Row], crit: Criteria) -> Row:
    """The fastest passing row; every row gets its reason."""
    passing = sorted((r for r in rows if r.passed and r.fastest is not None), key=lambda r: r.fastest or 0.0)
    chosen = passing[0] if passing else rows[0]
    chosen.chosen = True
    reduced_pass = any(r.choice.precision != "fp32" for r in passing)
    for row in rows:
        if row.error:
            row.why = f"could not run: {row.error}"
        elif not row.passed:
            bits = []
            if row.agreement is not None and row.agreement < crit.min_agreement:
                bits.append(f"{row.agreement:.2%} labels < {crit.min_agreement:.2%}")
            if row.miou_drop is not None and row.miou_drop > crit.max_miou_drop:
                bits.append(f"mIoU drop {row.miou_drop:.2f} points > {crit.max_miou_drop}")
            row.why = "fails: " + ("; ".join(bits) or (row.verdict or "outside tolerance"))
        elif row is chosen:
            row.why = "chosen: the fastest configuration that passes"
            if row.choice.precision == "fp32" and not reduced_pass and any(r.choice.precision != "fp32" for r in rows):
                row.why += " (no reduced-precision configuration passes)"
        else:
            row.why = f"passes, but slower than the chosen one ({row.fastest:,.0f} vs {chosen.fastest or 0:,.0f} ms)"
    return chosen


def _record(name: str, rows: list[Row], chosen: Row, crit: Criteria) -> dict[str, Any]:
    from zoo.registry import backends as registered, tuning

    paddle = [r.fastest for r in rows if (r.choice.backend, r.choice.precision) == reference_pair() and r.fastest]
    best = min(paddle) if paddle else None
    ratio = round(chosen.fastest / best, 3) if best and chosen.fastest else None
    default = (registered.default_backend().name, "fp32")  # what ran before tuning
    ort = [r.fastest for r in rows if (r.choice.backend, r.choice.precision) == default and r.fastest]
    return {
        "name": name, "tuned_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "choice": chosen.choice.as_dict(), "fingerprint": tuning.fingerprint(name, chosen.choice),
        "criteria": crit.as_dict(), "reference": "/".join(reference_pair()),
        "summary": {"speedup_vs_paddle": ratio, "agreement": chosen.agreement,
                    "vs_onnx_fp32": round(chosen.fastest / min(ort), 3) if ort and chosen.fastest else None,
                    "others_max": max((r.others for r in rows), default=0.0)},
        "candidates": [r.as_dict() for r in rows],
    }  # fmt: skip
