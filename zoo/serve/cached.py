"""The models a server will serve, resolved once and made sure of in the cache, before anything starts.

Never downloads: zoo serve serves what the cache holds. It goes through the one door (:func:`zoo.make.ensure.prepare`)
with fetching off, so a model that only has its Paddle form cached is converted (no network needed) and a missing one
is a NotCachedError naming the ``zoo pull`` to run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.serve.settings import Settings

if TYPE_CHECKING:
    from zoo.registry.catalog import ModelHandle


def resolve(settings: Settings) -> dict[str, ModelHandle]:
    """Each of ``settings.models`` as its handle, with what its backend runs in the cache; NotCachedError if not."""
    from zoo.errors import NotCachedError
    from zoo.make import ensure
    from zoo.registry import catalog
    from zoo.store import cache

    handles = {}
    for name in settings.models:
        handle = catalog.resolve(name)  # UnknownModelError names 'zoo list'
        if not cache.cached_formats(handle.name):
            pull = ensure.command(f"pull {handle.name}")
            raise NotCachedError(f"model '{handle.name}' is not in the cache ({cache.root()}); zoo serve only serves "
                                 f"cached models: run '{pull}', then 'zoo serve' again")  # fmt: skip
        handles[name] = ensure.prepare(handle, settings.backend, settings.precision or "fp32", fetch=False)
    return handles
