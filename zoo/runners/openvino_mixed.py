"""OpenVINO bfloat16 with some layers in float32: a model cut at layer boundaries into pieces, each compiled in its own
precision, run one after another.

OpenVINO's CPU plugin takes one precision hint per compiled model, and its per-node "keep this in f32" marks do not
survive its fusions (a marked convolution folded with its batch norm runs in bf16 all the same). So a model that
should run mostly in bf16 but keep a sensitive stretch in f32 is cut into pieces: every tensor a piece makes that a
later piece reads becomes a result of the one and a parameter of the other; constants stay where they are; the
model's own inputs go to every piece.

A *layer* is a compute-heavy op (convolution or matrix product), counted from 0 in the model's topological order;
``f32_layers`` names half-open ranges of them (``"56-63"`` or ``"3-5,56-63"``): the pieces holding them run in f32,
the rest in the runner's precision. ``zoo tune`` finds them (:func:`search`, through :mod:`zoo.measure.tune_mixed`)
and records them as a runner option, so a tuned choice reproduces exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zoo.errors import BackendError

LAYER_TYPES = ("Convolution", "GroupConvolution", "MatMul")


def parse(text: str) -> tuple[tuple[int, int], ...]:
    """``"3-5,56-63"`` → ``((3, 5), (56, 63))``, sorted and merged; a clear error for anything else."""
    ranges = []
    for part in str(text).replace(" ", "").split(","):
        lo, sep, hi = part.partition("-")
        if not (sep and lo.isdigit() and hi.isdigit()) or int(lo) >= int(hi):
            raise BackendError(f"f32_layers takes ranges of layer indices like '56-63' or '3-5,56-63' (start < end), "
                               f"not '{text}'")  # fmt: skip
        ranges.append((int(lo), int(hi)))
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return tuple((lo, hi) for lo, hi in merged)


def text(ranges: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> str:
    """The option's text for ``ranges`` (merged): the inverse of :func:`parse`."""
    return ",".join(f"{lo}-{hi}" for lo, hi in parse(",".join(f"{lo}-{hi}" for lo, hi in ranges)))


def layer_positions(model: Any) -> list[int]:
    """Positions, in ``model.get_ordered_ops()``, of its layers (the ops :data:`LAYER_TYPES` names)."""
    return [i for i, op in enumerate(model.get_ordered_ops()) if op.get_type_name() in LAYER_TYPES]


@dataclass
class Piece:
    compiled: Any
    request: Any
    reads: list[str]  # keys of the tensors it takes, in its parameter order (then the model's inputs)
    makes: list[str]  # keys of the tensors it hands on, in its result order (the last piece: the model's outputs)


class Pieces:
    """A model run as pieces in two precisions: ``run(x)`` gives its first output, as one compiled model would."""

    def __init__(self, pieces: list[Piece]):
        self.pieces = pieces

    @property
    def compiled(self) -> list[Any]:
        return [p.compiled for p in self.pieces]

    def run(self, x: Any) -> Any:
        tensors: dict[str, Any] = {}
        out = None
        for piece in self.pieces:
            feed = [tensors[key] for key in piece.reads] + [x]
            piece.request.infer(feed)
            if piece is self.pieces[-1]:
                out = piece.request.get_output_tensor(0).data.copy()
            else:
                for k, key in enumerate(piece.makes):  # handed on before this request runs again
                    tensors[key] = piece.request.get_output_tensor(k).data.copy()
        return out


def compile_pieces(core: Any, model: Any, ranges: tuple[tuple[int, int], ...], precision: str, config: dict[str, Any],
                   ov: Any) -> Pieces:  # fmt: skip
    """Cut ``model`` (static-shaped) so that the layers in ``ranges`` run in f32 and the rest in ``precision``
    (an OpenVINO hint: ``bf16``), and compile each piece with ``config``."""
    folded_model = folded(model)
    positions = layer_positions(folded_model)
    if not positions:
        raise BackendError("f32_layers: the model has no convolution or matrix product to keep in f32")
    if ranges[-1][1] > len(positions):
        raise BackendError(f"f32_layers: the model has {len(positions)} layers (0-{len(positions)}), not "
                           f"{text(ranges)}")  # fmt: skip
    # cut points (op positions) and each piece's precision
    cuts, hints = [0], []
    for lo, hi in ranges:
        for layer, hint in ((lo, precision), (hi, "f32")):
            at = positions[layer] if layer < len(positions) else None
            if at is None:
                continue
            if at > cuts[-1]:
                cuts.append(at)
                hints.append(hint)
            elif hints:
                hints[-1] = hint  # an empty piece: the next one starts here
    hints.append("f32" if ranges[-1][1] >= len(positions) else precision)
    cuts.append(len(folded_model.get_ordered_ops()))
    names = [f"{i}" for i in range(cuts[-1])]
    types = [op.get_type_name() for op in folded_model.get_ordered_ops()]
    piece_of = {name: p for p in range(len(cuts) - 1) for name in names[cuts[p]:cuts[p + 1]]}
    last = len(cuts) - 2
    for i, op in enumerate(folded_model.get_ordered_ops()):
        if op.get_type_name() == "Result":  # the model's outputs are the last piece's, wherever the order puts them
            piece_of[names[i]] = last
    pieces = []
    for p in range(len(cuts) - 1):
        graph = folded_model.clone()
        ops = graph.get_ordered_ops()
        if [op.get_type_name() for op in ops] != types:  # the cuts are positions in this order
            raise BackendError("f32_layers: OpenVINO orders a copy of this model differently; run it without "
                               "f32_layers")  # fmt: skip
        for i, op in enumerate(ops):
            op.set_friendly_name(names[i])
        params, reads, results, makes = [], [], [], []
        for i, op in enumerate(ops):
            if op.get_type_name() in ("Constant", "Parameter", "Result"):
                continue
            for out in op.outputs():
                users = {piece_of.get(t.get_node().get_friendly_name(), p) for t in out.get_target_inputs()}
                key = f"{i}:{out.get_index()}"
                if piece_of[names[i]] < p and p in users:  # made earlier, read here: a parameter
                    param = ov.opset13.parameter(out.get_partial_shape(), out.get_element_type(), key)
                    for target in list(out.get_target_inputs()):
                        if piece_of.get(target.get_node().get_friendly_name()) == p:
                            target.replace_source_output(param.output(0))
                    params.append(param)
                    reads.append(key)
                elif piece_of[names[i]] == p and any(u > p for u in users):  # made here, read later
                    results.append(out)
                    makes.append(key)
        if p == last:
            results, makes = list(graph.outputs), []
        elif not results:
            continue  # it hands nothing on (only the model's input before the first layer): nothing to run
        sub = ov.Model(results, params + list(graph.get_parameters()), f"piece{p}")
        compiled = core.compile_model(sub, "CPU", {**config, "INFERENCE_PRECISION_HINT": hints[p]})
        pieces.append(Piece(compiled, compiled.create_infer_request(), reads, makes))
    return Pieces(pieces)


def folded(model: Any) -> Any:
    """A copy of ``model`` with its constant subgraphs folded: what :func:`compile_pieces` cuts and counts layers in."""
    from openvino.passes import ConstantFolding, Manager

    copy = model.clone()
    manager = Manager()
    manager.register_pass(ConstantFolding())  # shape arithmetic of a static model becomes constants, not hand-offs
    manager.run_passes(copy)
    return copy


# ---- finding the layers to keep (zoo tune) ---------------------------------------------------------------------------

STEP = 0.05  # the f32 tail grows by this share of the layers at each step of the search
MAX_SHARE = 0.5  # and stops at this share: beyond it bf16 no longer pays


@dataclass(frozen=True)
class Found:
    """What :func:`search` found: the runner options to run with, and how it got there."""

    options: dict[str, Any] | None  # {"f32_layers": "60-70"}, or None when no layer needs f32 or no tail is enough
    agreement: float | None  # with those options, against this backend's own float32 run (worst image)
    note: str  # one line: what was tried and what came of it
    tried: tuple[tuple[str, float], ...] = ()  # (f32_layers, agreement) for every run of the search


def search(make: Any, inputs: list[Any], agreement: Any, target: float, precision: str,
           max_share: float = MAX_SHARE) -> Found | None:  # fmt: skip
    """The shortest tail of layers to keep in f32 for a ``precision`` (bf16) run to agree with this backend's own
    float32 run on ``target`` of the labels (``agreement(references, outputs)``: the caller's comparison, its worst
    image). ``make(precision, options)`` opens a runner of this backend. None when the precision has nothing to search.

    Why a tail: on deeplabv3p (seeded weights, 512×1024, six scenes) bf16 keeps 99.2–99.7% of the labels, any one
    tenth of the layers kept in f32 elsewhere moves that by no more than the scenes differ from each other, and the
    last 10, 14, 20 and 30% of the layers in f32 keep at least 99.52, 99.67, 99.67 and 99.72%: rounding in the
    layers nearest the output reaches the near-tied logits least damped. The tail grows by :data:`STEP` of the layers
    up to ``max_share`` of them.
    """
    if precision != "bf16":
        return None
    shape = tuple(inputs[0].shape)
    refs = [make("fp32", None).run(x) for x in inputs]
    plain = make("bf16", None)
    whole = agreement(refs, [plain.run(x) for x in inputs])
    if whole >= target:
        return Found(None, whole, f"bf16 alone keeps {whole:.2%} of float32's labels: no layer needs f32")
    count = plain.layer_count(shape)
    del plain
    tried: list[tuple[str, float]] = []
    steps = sorted({min(count, max(1, round(count * STEP * k))) for k in range(1, round(max_share / STEP) + 1)})
    for kept in steps:
        options = {"f32_layers": f"{count - kept}-{count}"}
        runner = make("bf16", options)
        value = agreement(refs, [runner.run(x) for x in inputs])
        del runner
        tried.append((options["f32_layers"], value))
        if value >= target:
            note = (f"bf16 alone keeps {whole:.2%} of float32's labels; with the last {kept} of {count} layers in f32, "
                    f"{value:.2%} ({len(tried)} tail{'' if len(tried) == 1 else 's'} tried)")  # fmt: skip
            return Found(options, value, note, tuple(tried))
    return Found(None, None, f"bf16 alone keeps {whole:.2%} of float32's labels, and with the last {steps[-1]} of "
                             f"{count} layers in f32 still under {target:.2%}", tuple(tried))  # fmt: skip
