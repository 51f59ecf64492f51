"""The public Python API is exactly what zoo/__init__.py's __all__ says, and the contract holds for every plugin found.

The architecture checks are parametrized over what discovery finds (built-ins and anything installed), not a list.
"""

from __future__ import annotations

import dataclasses

import pytest

import zoo
from zoo.registry import catalog, plugins
from zoo.registry.spec import Architecture

PUBLIC = {
    "Architecture", "Artifact", "Backend", "InputSpec", "ModelEntry", "ModelHandle", "ZooError", "__version__",
    "architecture", "evaluate", "get", "list_backends", "list_models", "list_plugins", "load", "resolve", "verify_model",
}  # fmt: skip


def test_all_is_exactly_the_public_api():
    assert set(zoo.__all__) == PUBLIC and len(zoo.__all__) == len(PUBLIC)
    for name in zoo.__all__:
        assert getattr(zoo, name) is not None, name
    public_names = {n for n in dir(zoo) if not n.startswith("_")} - {"annotations", "TYPE_CHECKING", "Any"}
    submodules = {n for n in public_names if type(getattr(zoo, n)).__name__ == "module"}
    assert public_names - submodules <= PUBLIC, public_names - submodules - PUBLIC


ARCHITECTURES = sorted(p.name for p in plugins.discover() if p.architecture is not None)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_discovered_architecture_keeps_the_contract(name):
    arch = plugins.get_architecture(name)
    assert isinstance(arch, Architecture) and arch.name == name and arch.summary
    assert dataclasses.is_dataclass(arch) and type(arch).__dataclass_params__.frozen
    spec = arch.input
    assert spec.layout == "NCHW" and len(spec.mean) == len(spec.std) == 3 and all(s > 0 for s in spec.std)
    assert len(arch.labels) >= 1 and len(arch.colors()) >= len(arch.labels)
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in arch.colors())


def test_every_registered_model_resolves_to_a_discovered_architecture():
    known = catalog.current()
    assert known.models
    for name, entry in known.models.items():
        handle = catalog.resolve(name)
        assert handle.entry is entry and handle.architecture.name == entry.architecture in ARCHITECTURES
        assert handle.num_classes == (entry.num_classes or len(handle.architecture.labels))
