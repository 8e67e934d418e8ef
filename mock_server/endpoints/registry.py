"""Which endpoint answers an endpoint id: the hand-written modules, fal's catalogue (built on
first use), then whatever a feature offers (record and replay's cassettes).

The emulator owns one registry; the queue, the protocol layer and the features ask it through
the emulator.  ``--endpoints`` (``Settings.endpoints``) limits what it answers.
"""
from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Callable, Iterable

from mock_server.core.endpoint import Endpoint
from mock_server.settings import Settings

if TYPE_CHECKING:
    from mock_server.endpoints.catalog import Catalog

log = logging.getLogger("fal_mock")


@functools.lru_cache(maxsize=256)  # on every submit: a handful of ids, computed once each
def app_of(endpoint_id: str) -> str:
    """``[namespace/]owner/alias`` of an endpoint id: what status/result/cancel URLs use.

    Both clients strip the sub-path for those calls (fal_client ``AppId``,
    fal-js ``parseEndpointId``).
    """
    parts = endpoint_id.split("/")
    if parts[0] in ("workflows", "comfy"):
        return "/".join(parts[:3])
    return "/".join(parts[:2])


class EndpointRegistry:
    """Endpoint id -> :class:`Endpoint`, and which apps (``owner/alias``) exist."""

    def __init__(self, settings: Callable[[], Settings], endpoints: Iterable[Endpoint],
                 catalog: "Catalog | None" = None) -> None:
        self._settings = settings
        self._endpoints: dict[str, Endpoint] = {}
        self._apps: dict[str, Endpoint] = {}  # owner/alias (and full id) -> endpoint
        #: ``fallback(endpoint_id)``: an endpoint for an id neither a module nor the catalogue has,
        #: or None (asked in order; what one returns is registered)
        self.fallbacks: list[Callable[[str], Endpoint | None]] = []
        #: ``wrapper(endpoint)``: what stands in front of an endpoint built from the catalogue
        #: when it is first asked for (record and replay put their cassettes there)
        self.wrappers: list[Callable[[Endpoint], Endpoint]] = []
        #: fal's catalogued endpoints (issue 16), opened when an id without a hand-written
        #: module is first asked for: start-up reads nothing of it
        self._catalog = catalog
        self._catalog_apps: frozenset[str] | None = None
        for endpoint in endpoints:
            self.add(endpoint)

    def add(self, endpoint: Endpoint) -> None:
        self._endpoints[endpoint.endpoint_id] = endpoint
        self._apps.setdefault(app_of(endpoint.endpoint_id), endpoint)
        self._apps[endpoint.endpoint_id] = endpoint

    def in_use(self) -> list[Endpoint]:
        """The endpoints in use so far (hand-written ones, and catalogued ones once asked for)."""
        return list(self._endpoints.values())

    @property
    def catalog(self) -> "Catalog":
        """fal's endpoint catalogue (bundled, plus the state folder's imports), opened on first use."""
        if self._catalog is None:
            from mock_server.endpoints.catalog import Catalog

            self._catalog = Catalog(self._settings().state_dir)
        return self._catalog

    def get(self, endpoint_id: str) -> Endpoint | None:
        """The endpoint for a full id as used on submit/run: a hand-written module's, else one
        built from the catalogue on first use, else one a fallback offers; None for an id none
        knows, or one outside ``--endpoints``."""
        allowed = self._settings().endpoints
        if allowed and endpoint_id not in allowed:
            return None
        found = self._endpoints.get(endpoint_id)
        if found is None:
            found = self._catalogued(endpoint_id)
        if found is None:
            for fallback in self.fallbacks:
                found = fallback(endpoint_id)
                if found is not None:
                    self.add(found)
                    break
        return found

    def forget(self, which: Callable[[Endpoint], bool]) -> None:
        """Unregister the endpoints ``which`` selects (their ids are unknown again, or built
        again from the catalogue when next asked for)."""
        kept = [endpoint for endpoint in self._endpoints.values() if not which(endpoint)]
        self._endpoints, self._apps = {}, {}
        for endpoint in kept:
            self.add(endpoint)

    def _catalogued(self, endpoint_id: str) -> Endpoint | None:
        if len(endpoint_id) > 256:  # no fal id is this long; not worth a look-up
            return None
        try:
            entry = self.catalog.get(endpoint_id)
        except (OSError, ValueError):  # an id no file can be named after, a damaged import: unknown
            log.warning("catalogue look-up of %r failed", endpoint_id[:120], exc_info=True)
            return None
        if entry is None:
            return None
        from mock_server.endpoints.generic import GenericEndpoint

        catalog = self.catalog
        endpoint: Endpoint = GenericEndpoint(entry, lambda: catalog.openapi(endpoint_id))
        for wrapper in self.wrappers:
            endpoint = wrapper(endpoint)
        self.add(endpoint)
        return endpoint

    def knows_app(self, app_path: str) -> bool:
        """Whether ``owner/alias`` (or a full id) names an emulated app (status/result paths):
        an app of a hand-written or catalogued endpoint (within ``--endpoints`` when given)."""
        allowed = self._settings().endpoints
        if allowed:
            return app_path in allowed or any(app_of(endpoint_id) == app_path for endpoint_id in allowed)
        if app_path in self._apps:
            return True
        if self._catalog_apps is None:
            self._catalog_apps = frozenset(app_of(endpoint_id) for endpoint_id in self.catalog.ids())
        return app_path in self._catalog_apps
