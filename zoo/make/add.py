"""``zoo add NAME SOURCE``: someone's own PaddleSeg export, checked like a pull, cached, and registered by name.

SOURCE is the folder PaddleSeg's ``tools/export.py`` wrote, an archive of it (.tar, .tgz, .zip) or a URL of one. It
goes through :func:`zoo.make.pull.pull` — the same fetch, pin, archive policy and program/params check as any
download, so a hostile archive is refused exactly like a hostile pull and leaves nothing behind. Then the program
and ``deploy.yaml`` are read (:mod:`zoo.formats.program`, :mod:`zoo.runners.deploy`): its class count, input size
and preprocessing become the entry's own facts, with the labels and palette given here (a file or a preset). Last,
the entry is written into the user's registry (or ``registry=``) atomically; if anything fails first, no registry is
touched and the cache ref the pull made is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from zoo import config
from zoo.errors import AddError
from zoo.registry import catalog, model_facts, presets, remembered, writer
from zoo.registry.entries import Artifact, ModelEntry
from zoo.store import cache, pins


@dataclass(frozen=True)
class AddResult:
    """What ``zoo add`` registered."""

    entry: ModelEntry  # the entry as written
    registry: Path  # the registry file it was written to
    folder: Path  # the cached Paddle model folder
    signature: dict[str, Any]  # the program's input and output (zoo.formats.program.Signature.as_dict())

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.entry.name, "registry": str(self.registry), "path": str(self.folder),
                "program": self.signature, "entry": self.entry.as_dict()}  # fmt: skip


def _source_url(source: str) -> str:
    """SOURCE as the entry's URL: http(s) and file:// as given, a local folder or archive as its absolute path."""
    if source.lower().startswith(("http://", "https://", "file://")):
        return source
    path = Path(source).expanduser()
    if not path.exists():
        raise AddError(f"{source} does not exist; give the folder PaddleSeg's tools/export.py wrote, an archive of it "
                       "(.tar, .tgz, .zip) or its URL")  # fmt: skip
    return str(path.resolve())


def add(
    name: str,
    source: str,
    *,
    registry: Path | None = None,
    labels: str | None = None,
    palette: str | None = None,
    dataset: str | None = None,
    license: str | None = None,  # noqa: A002 - the registry key's name
    summary: str | None = None,
    architecture: str | None = None,
    ignore_index: int | None = None,
    reduce_zero_label: bool | None = None,
    force: bool = False,
) -> AddResult:
    """Check, cache and register the PaddleSeg export at ``source`` as ``name``."""
    from zoo.make import pull
    from zoo.registry import plugins

    cache.check_name(name)
    target = (registry or config.user_registry()).expanduser().resolve()
    known = catalog.current().models.get(name)
    mine = writer.defines(target, name)
    if known is not None and not (mine and Path(known.source).resolve() == target):
        raise AddError(f"model '{name}' is already defined in {known.source}; choose another name")
    if mine and not force:
        raise AddError(f"model '{name}' is already in {target}; run 'zoo add {name} SOURCE --force' to replace it")
    names = model_facts.read_labels(labels, error=AddError) if labels else None
    colours = model_facts.read_palette(palette, error=AddError) if palette else None
    base = plugins.get_architecture(architecture) if architecture else None
    url = _source_url(source)
    entry = ModelEntry(name, architecture, summary or f"PaddleSeg export added from {url}", dataset=dataset,
                       license=license, artifacts={"inference": Artifact("inference", (url,))},
                       source=str(target))  # fmt: skip
    handle = catalog.ModelHandle(name, entry, model_facts.architecture_for(entry, base, None),
                                 len(names or ()) or 1, cache.ref_path(name))  # fmt: skip
    if force:
        pins.remove(f"{name}/inference")  # the folder or URL may hold new content now: pin what comes
    got = pull.pull(handle, fmt="paddle", source="inference", force=True, progress=False)[0]
    try:
        entry, signature = _described(entry, got.path, got.sha256, names, colours, ignore_index, reduce_zero_label,
                                      dataset)  # fmt: skip
        keys = {"architecture": architecture, "summary": entry.summary, "dataset": dataset, "license": license,
                "num_classes": entry.num_classes, **model_facts.table_of(entry)}  # fmt: skip
        artifact = {"urls": [url], "sha256": got.sha256, "size": _blob_size(got.sha256)}
        writer.write_entry(target, name, writer.table_text(name, keys, {"inference": artifact}))
    except BaseException:
        cache.drop_ref(name)  # the registry was not written: the cache must not describe the model either
        raise
    remembered.remember(entry)
    return AddResult(entry, target, got.path, signature)


def _blob_size(sha256: str | None) -> int | None:
    if not sha256:
        return None
    try:
        return cache.blob_path(sha256).stat().st_size
    except OSError:
        return None


def _described(entry: ModelEntry, folder: Path, sha256: str | None, labels: tuple[str, ...] | None,
               palette: tuple[tuple[int, int, int], ...] | None, ignore_index: int | None,
               reduce_zero_label: bool | None, dataset: str | None) -> tuple[ModelEntry, dict[str, Any]]:  # fmt: skip
    """The entry with what the program and deploy.yaml say, and the labels and palette given."""
    from zoo.formats import program
    from zoo.runners import deploy

    sig = program.signature(cache.program_file(folder))
    spec = deploy.input_spec(deploy.load(folder), sig, f"{entry.artifacts['inference'].urls[0]}/deploy.yaml")
    n = sig.num_classes
    if labels is not None and n is not None and len(labels) != n:
        raise AddError(f"--labels names {len(labels)} classes but the program scores {n}; give one name per class")
    n = n or (len(labels) if labels else None)
    if n is None:
        raise AddError("the program does not say how many classes it predicts; "
                       "pass --labels FILE with one name per class")  # fmt: skip
    if palette is not None and len(palette) < n:
        raise AddError(f"--palette has {len(palette)} colours for {n} classes; give one per class")
    conventions = presets.EVAL.get(dataset or "", {})
    reduce = reduce_zero_label if reduce_zero_label is not None else bool(conventions.get("reduce_zero_label", False))
    palette = palette[:n] if palette is not None else None  # a preset's colours for this model's classes
    return replace(entry, num_classes=n, labels=labels, palette=palette, input=spec,
                   ignore_index=ignore_index, reduce_zero_label=reduce), sig.as_dict()  # fmt: skip
