"""``zoo tune``'s second look at a reduced-precision candidate that falls short: which layers to keep in f32.

A backend whose runner module offers ``tune_search`` (OpenVINO: :func:`zoo.runners.openvino_mixed.search`) can run a
model mostly in bf16 with some layers in f32. When its bf16 run does not keep enough of the labels, the search finds
the shortest tail of layers to keep in f32, and tune adds that configuration as a candidate of its own — measured,
judged against float32 Paddle and chosen (or not) exactly like every other. The search looks at other synthetic scenes
(:data:`SEARCH_SEED`, at least :data:`SEARCH_IMAGES` of them) than the verdict's, against the backend's own float32
run, so its worst scene must reach :data:`SEARCH_MARGIN` above the threshold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from zoo.errors import ZooError
from zoo.store.tuned import Choice
from zoo.util import first_line

if TYPE_CHECKING:
    from zoo.registry.catalog import ModelHandle

SEARCH_SEED = 7  # the verdict's scenes are seed 0's
SEARCH_IMAGES = 4  # at least: the worst of them must reach the aim
SEARCH_MARGIN = 0.001  # of the labels: aimed above --min-agreement


def search_of(backend: str, precision: str) -> Callable[..., Any] | None:
    """The backend runner module's ``tune_search``, if it has one for ``precision`` (its ``TUNE_SEARCH_PRECISIONS``)."""
    import importlib

    from zoo.registry import backends as registered

    module = importlib.import_module(registered.get(backend).runner.partition(":")[0])
    return getattr(module, "tune_search", None) if precision in getattr(module, "TUNE_SEARCH_PRECISIONS", ()) else None


def siblings(choices: list[Choice], handle: ModelHandle, size: tuple[int, int], count: int, min_agreement: float,
             judge: Callable[[str], Callable[[list[Any], list[Any]], float]],
             progress: Callable[[str], None]) -> list[tuple[Choice, Choice, str]]:  # fmt: skip
    """(candidate, the same with the layers found kept in f32, how they were found) for each reduced-precision
    candidate whose bf16 run falls short and whose backend can search; one search per backend and precision.

    ``judge(precision)`` gives the agreement of outputs with references (their worst image), as tune's verdict
    compares them at that precision."""
    from zoo.measure.inputs import inputs
    from zoo.runners import runtime

    target = min_agreement + SEARCH_MARGIN
    if target > 1.0:
        return []  # an exact run was asked for: no bf16 run is one
    arch, found_for, out = handle.architecture, {}, []
    xs: list[Any] = []
    for c in choices:
        search = None if c.options else search_of(c.backend, c.precision)
        if search is None:
            continue
        pair = (c.backend, c.precision)
        if pair not in found_for:
            scenes = inputs(None, size, max(count, SEARCH_IMAGES), SEARCH_SEED)
            xs = xs or [runtime.preprocess(rgb, arch.input) for _, rgb in scenes]
            def make(precision: str, options: dict[str, Any] | None, c: Choice = c) -> Any:
                return runtime.load(handle, backend=c.backend, precision=precision, threads=c.threads,
                                    options=options).runner  # fmt: skip

            progress(f"tune {handle.name}: {c.backend}/{c.precision}: does it keep {target:.2%} of the labels, or "
                     "which layers must stay in f32?")  # fmt: skip
            try:
                found_for[pair] = search(make, xs, judge(c.precision), target, c.precision)
            except Exception as exc:  # a backend's own failure (a plugin's search too): the candidate stays as it is
                found_for[pair] = None
                why = first_line(exc) if isinstance(exc, ZooError) else f"{type(exc).__name__}: {first_line(exc)}"
                progress(f"tune {handle.name}: {c.backend}/{c.precision}: the search failed — {why}")
            if found_for[pair] is not None:
                progress(f"tune {handle.name}: {c.backend}/{c.precision}: {found_for[pair].note}")
        found = found_for[pair]
        if found is not None and found.options:
            options = tuple(sorted({**dict(c.options), **found.options}.items()))
            out.append((c, Choice(c.backend, c.precision, c.threads, options), found.note))
    return out
