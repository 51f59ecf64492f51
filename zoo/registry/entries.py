"""The model registry: TOML files of ``[models.<name>]`` tables, merged in a fixed order.

An entry needs one artifact table; ``architecture`` names the plugin that can build the network (``zoo export``) and
supplies defaults; an entry without one (``zoo add``) runs from its exported program, and its own ``labels``,
``palette``, ``input``, ``ignore_index`` and ``reduce_zero_label`` (:mod:`zoo.registry.model_facts`) override the
plugin's, as timm's pretrained config overrides its architecture's.

Order: the packaged ``registry.toml``; the user registry (``zoo/config.py``); files in ``ZOO_REGISTRY``; files given
with ``--registry``; registries shipped by plugins. A name defined twice is an error unless the later table says
``override = true``. Every problem in a file is collected and reported at once, with file, entry and key.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo import config
from zoo.errors import RegistryError, UnknownModelError
from zoo.registry import model_facts
from zoo.registry.spec import InputSpec
from zoo.util import SHA256 as _SHA256, MODEL_NAME

SCHEMA = 1
ARTIFACT_KINDS = ("inference", "onnx", "weights")
PACKAGED = Path(__file__).with_name("registry.toml")
_NAME = MODEL_NAME
MAX_CLASSES = 1024  # classes a model may declare: PaddleSeg's largest data set (COCO-Stuff) has 171
MAX_REGISTRY_BYTES = 16 << 20  # a registry file bigger than this is not one


@dataclass(frozen=True)
class Artifact:
    """One downloadable form of a model."""

    kind: str  # "inference" (Paddle model archive), "onnx", or "weights" (.pdparams)
    urls: tuple[str, ...]  # tried in order
    sha256: str | None = None  # "sha256:<hex>" when published
    size: int | None = None  # bytes, when published
    docs: tuple[str, ...] = ()  # where each URL is documented (same order as urls), when the registry says

    def sources(self) -> list[dict[str, str | None]]:
        """Each URL with the page that documents it (None where the registry does not say)."""
        return [{"url": url, "docs": self.docs[i] if i < len(self.docs) else None} for i, url in enumerate(self.urls)]


@dataclass(frozen=True)
class ModelEntry:
    """A registry entry, as merged from every registry file."""

    name: str  # the model's name on the command line
    architecture: str | None  # the plugin that knows the network; None: the exported program alone (zoo add)
    summary: str = ""  # one line
    config: str | None = None  # PaddleSeg config it was trained with
    dataset: str | None = None  # training dataset
    num_classes: int | None = None  # classes the model predicts
    train_size: tuple[int, int] | None = None  # (W, H) crop it was trained at
    miou: float | None = None  # published mIoU on the dataset's val split
    license: str | None = None
    homepage: str | None = None
    artifacts: dict[str, Artifact] = field(default_factory=dict)  # by kind
    source: str = ""  # registry file that defined it
    labels: tuple[str, ...] | None = None  # class names by id; overrides the architecture's
    palette: tuple[tuple[int, int, int], ...] | None = None  # RGB per class id; overrides the architecture's
    ignore_index: int | None = None  # label value evaluation skips (None: 255)
    reduce_zero_label: bool = False  # label 0 is "other": ignored, the rest shift down by one (ADE20K)
    input: InputSpec | None = None  # preprocessing (mean/std, size policy); overrides the architecture's

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "architecture": self.architecture, "summary": self.summary, "config": self.config,
            "dataset": self.dataset, "num_classes": self.num_classes,
            "train_size": list(self.train_size) if self.train_size else None, "miou": self.miou,
            "license": self.license, "homepage": self.homepage, "source": self.source,
            "labels": list(self.labels) if self.labels is not None else None,
            "palette": [list(c) for c in self.palette] if self.palette is not None else None,
            "ignore_index": self.ignore_index, "reduce_zero_label": self.reduce_zero_label,
            "input": self.input.as_dict() if self.input is not None else None,
            "artifacts": {
                k: {"urls": list(a.urls), "sha256": a.sha256, "size": a.size, "sources": a.sources()}
                for k, a in self.artifacts.items()
            },
        }  # fmt: skip


_FIELDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "architecture": (str, "a string"),
    "summary": (str, "a string"),
    "config": (str, "a string"),
    "dataset": (str, "a string"),
    "num_classes": (int, "an integer"),
    "train_size": (list, "a list [W, H]"),
    "miou": ((int, float), "a number"),
    "license": (str, "a string"),
    "homepage": (str, "a string"),
    "override": (bool, "true or false"),
    "labels": ((list, str), "a list of class names or a preset name"),
    "palette": ((list, str), "a list of [R, G, B] or a preset name"),
    "ignore_index": (int, "an integer"),
    "reduce_zero_label": (bool, "true or false"),
    "input": (dict, "a table (mean, std, scale, color, size_policy, size, keep_ratio, pad, pad_value)"),
}


def _type_ok(value: Any, expected: type | tuple[type, ...]) -> bool:
    return isinstance(value, expected) and not (isinstance(value, bool) and expected in (int, (int, float)))


def _url_problem(url: Any) -> str | None:
    """Why a registry URL cannot be fetched (None: it may be): unparseable (a bad IPv6 host), a newline in it."""
    import urllib.parse

    if not isinstance(url, str):
        return None  # reported by the 'urls' check
    if any(c in url for c in "\r\n\t\0"):
        return "holds a control character"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    return None


def _parse_artifact(where: str, kind: str, table: Any, problems: list[str]) -> Artifact | None:
    if not isinstance(table, dict):
        problems.append(f"{where}: '{kind}' must be a table with 'urls'")
        return None
    start = len(problems)
    urls = table.get("urls")
    if urls is None:
        problems.append(f"{where}.{kind}: missing required key 'urls'")
    elif not (isinstance(urls, list) and urls and all(isinstance(u, str) and u for u in urls)):
        problems.append(f"{where}.{kind}: key 'urls' must be a non-empty list of strings, got {urls!r}")
    for url in urls if isinstance(urls, list) else []:
        if problem := _url_problem(url):
            problems.append(f"{where}.{kind}: URL {url!r} {problem}")
    sha = table.get("sha256")
    if sha is not None and not (isinstance(sha, str) and _SHA256.match(sha)):
        problems.append(f"{where}.{kind}: key 'sha256' must look like 'sha256:<64 lowercase hex>', got {sha!r}")
    size = table.get("size")
    if size is not None and not (_type_ok(size, int) and size > 0):
        problems.append(f"{where}.{kind}: key 'size' must be a positive integer (bytes), got {size!r}")
    docs = table.get("docs", [])
    if not (isinstance(docs, list) and all(isinstance(d, str) and d for d in docs)):
        problems.append(f"{where}.{kind}: key 'docs' must be a list of strings (one per URL), got {docs!r}")
    elif docs and isinstance(urls, list) and len(docs) != len(urls):
        problems.append(f"{where}.{kind}: key 'docs' has {len(docs)} entries for {len(urls)} urls; give one per URL")
    for key in sorted(set(table) - {"urls", "sha256", "size", "docs"}):
        problems.append(f"{where}.{kind}: unknown key '{key}' (expected urls, sha256, size, docs)")
    if len(problems) > start:
        return None
    return Artifact(kind, tuple(urls), sha, size, tuple(docs))


def _read_text(path: Path) -> str:
    """A registry file's text: a regular file (a FIFO or device would block or never end), UTF-8, at most
    MAX_REGISTRY_BYTES."""
    import stat

    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise RegistryError([f"{path}: not a regular file (a FIFO, device or folder); give a registry .toml file"])
        with open(path, "rb") as f:
            data = f.read(MAX_REGISTRY_BYTES + 1)
    except OSError as exc:
        raise RegistryError([f"{path}: cannot read registry file ({exc.strerror or exc})"]) from None
    if len(data) > MAX_REGISTRY_BYTES:
        raise RegistryError([f"{path}: larger than {MAX_REGISTRY_BYTES} bytes; that is no registry file"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError([f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8"]) from None


def parse_file(path: Path, known_architectures: set[str] | None = None) -> tuple[list[ModelEntry], set[str]]:
    """Parse one registry file; return its entries and the names marked ``override``. Raises RegistryError."""
    text = _read_text(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError([f"{path}: TOML syntax error: {exc}"]) from None
    except RecursionError:  # tables or arrays nested 100,000 deep
        raise RegistryError([f"{path}: nested too deeply to be a registry file"]) from None
    problems: list[str] = []
    schema = doc.get("schema", SCHEMA)
    if schema != SCHEMA:
        problems.append(f"{path}: key 'schema' is {schema!r}; this zoo reads schema {SCHEMA}")
    for key in sorted(set(doc) - {"schema", "models"}):
        problems.append(f"{path}: unknown top-level key '{key}' (expected 'schema' and [models.<name>] tables)")
    models = doc.get("models", {})
    if not isinstance(models, dict):
        problems.append(f"{path}: 'models' must be a table of [models.<name>] tables")
        models = {}
    entries: list[ModelEntry] = []
    overrides: set[str] = set()
    for name, table in models.items():
        where = f"{path}: [models.{name}]"
        if not _NAME.match(name):
            problems.append(f"{where}: model names are lowercase letters, digits, '.', '_' and '-'")
        if not isinstance(table, dict):
            problems.append(f"{where}: must be a table")
            continue
        start = len(problems)
        for key, value in table.items():
            if key in ARTIFACT_KINDS:
                continue
            if key not in _FIELDS:
                problems.append(f"{where}: unknown key '{key}'")
            elif not _type_ok(value, _FIELDS[key][0]):
                problems.append(f"{where}: key '{key}' must be {_FIELDS[key][1]}, got {type(value).__name__} {value!r}")
        classes = table.get("num_classes")
        if _type_ok(classes, int) and not 0 < classes <= MAX_CLASSES:
            problems.append(f"{where}: key 'num_classes' must be between 1 and {MAX_CLASSES}, got {classes!r}")
        size = table.get("train_size")
        if isinstance(size, list) and not (len(size) == 2 and all(_type_ok(v, int) and v > 0 for v in size)):
            problems.append(f"{where}: key 'train_size' must be [W, H] positive integers, got {size!r}")
        arch = table.get("architecture")
        if isinstance(arch, str) and known_architectures is not None and arch not in known_architectures:
            known = ", ".join(sorted(known_architectures)) or "none"
            problems.append(
                f"{where}: key 'architecture': no installed plugin provides '{arch}' (installed: {known}); "
                "see 'zoo plugins'"
            )
        facts = model_facts.parse(where, table, problems)
        artifacts = {}
        for kind in ARTIFACT_KINDS:
            if kind in table:
                artifact = _parse_artifact(where, kind, table[kind], problems)
                if artifact is not None:
                    artifacts[kind] = artifact
        if not any(kind in table for kind in ARTIFACT_KINDS):
            problems.append(f"{where}: needs at least one artifact table: {', '.join(ARTIFACT_KINDS)}")
        if len(problems) > start:
            continue
        if table.get("override"):
            overrides.add(name)
        entries.append(
            ModelEntry(
                name=name,
                architecture=table.get("architecture"),
                summary=table.get("summary", ""),
                config=table.get("config"),
                dataset=table.get("dataset"),
                num_classes=table.get("num_classes"),
                train_size=tuple(table["train_size"]) if "train_size" in table else None,
                miou=float(table["miou"]) if "miou" in table else None,
                license=table.get("license"),
                homepage=table.get("homepage"),
                artifacts=artifacts,
                source=str(path),
                **facts,
            )
        )
    if problems:
        raise RegistryError(problems)
    return entries, overrides


def registry_paths(extra: list[Path] | None = None) -> list[Path]:
    """Registry files in merge order (plugin registries last)."""
    from zoo.registry import plugins

    paths = [PACKAGED]
    user = config.user_registry()
    if user.is_file():
        paths.append(user)
    paths += config.registry_files() + list(extra or [])
    for arch in plugins.architectures().values():
        paths += [Path(p) for p in arch.registries]
    return paths


def load(extra: list[Path] | None = None) -> dict[str, ModelEntry]:
    """Merge every registry file into {name: entry}. Raises RegistryError listing every problem."""
    from zoo.registry import plugins

    discovered = plugins.discover()
    allow = config.plugin_allowlist()
    known = {p.name for p in discovered}
    merged: dict[str, ModelEntry] = {}
    problems: list[str] = []
    for path in registry_paths(extra):
        # architectures left out by ZOO_PLUGINS are not errors, their entries just do not load
        try:
            entries, overrides = parse_file(path, known if allow is None else None)
        except RegistryError as exc:
            problems += exc.problems
            continue
        for entry in entries:
            if allow is not None and entry.architecture is not None and entry.architecture not in known:
                continue
            if entry.name in merged and entry.name not in overrides:
                problems.append(
                    f"{path}: [models.{entry.name}]: already defined in {merged[entry.name].source}; "
                    "rename it or add 'override = true'"
                )
                continue
            merged[entry.name] = entry
    if problems:
        raise RegistryError(problems)
    return merged


def get(name: str, extra: list[Path] | None = None) -> ModelEntry:
    """The entry called ``name``, or UnknownModelError with close matches."""
    models = load(extra)
    if name in models:
        return models[name]
    close = difflib.get_close_matches(name, list(models), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    raise UnknownModelError(f"unknown model '{name}'; {hint}run 'zoo list' to see the available models")


def from_record(name: str, data: dict[str, Any], source: str) -> ModelEntry:
    """The entry a cache record describes (:func:`zoo.registry.remembered.cached_description`): its
    :meth:`ModelEntry.as_dict` as written, or the few fields an export or a conversion left. A damaged record just
    describes less: what does not parse is left out, not raised."""
    facts_keys = ("labels", "palette", "ignore_index", "reduce_zero_label", "input")
    known = set(ModelEntry.__dataclass_fields__) - {"name", "artifacts", "source", "train_size", *facts_keys}
    artifacts = {
        kind: Artifact(kind, tuple(a["urls"]), a.get("sha256"), a.get("size"),
                       tuple(s.get("docs") or "" for s in a.get("sources") or ()) if a.get("sources") else ())
        for kind, a in (data.get("artifacts") or {}).items()
        if isinstance(a, dict) and a.get("urls")
    }  # fmt: skip
    size = data.get("train_size")
    raw = {k: data[k] for k in facts_keys if data.get(k) is not None}
    if isinstance(raw.get("input"), dict):
        raw["input"] = {k: v for k, v in raw["input"].items() if v is not None}
    facts = model_facts.parse(source, raw, [])
    return ModelEntry(name=name, **{k: data[k] for k in known if k in data}, artifacts=artifacts, source=source,
                      train_size=tuple(size) if size else None, **facts)  # fmt: skip
