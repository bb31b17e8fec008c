"""Which services this repository runs: each service's package declares itself.

Every package ``services/<name>/`` that runs as ``python -m services.<name>`` sets, in its
``__init__.py``::

    MANIFEST = ServiceManifest(name="tax", agency="tax", default_port=8002, uid=10003)

and :func:`manifests` finds them by scanning the ``services`` package, so a new agency's folder
alone registers it: the stack (``infra/stack.py``) starts it, the ACLs (``infra/kafka/acls.py``)
grant what its wiring declares, the specification documents it, the replayer knows its port,
the compose secrets (``infra/compose_trust.py``) give it a user and a password, and
``python -m infra.compose_gen`` writes its docker-compose service. Discovery rather than one
central list, because a central list is exactly the edit outside the agency's folder that the
manifest exists to remove; the cost, an import of each package, is small (``__init__.py`` files
import nothing heavy).

Packages without a ``MANIFEST`` (``runtime``, ``replay``) are libraries, not services.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from contracts.agencies import ONE_STOP

PACKAGE = "services"
"""The package whose sub-packages are scanned."""


class ManifestError(ValueError):
    """Two manifests clash, or one contradicts its package; the message says which and why."""


@dataclass(frozen=True)
class ServiceManifest:
    """What the rest of the repository needs to know about one service, declared by the service."""

    name: str
    """Package name, Kafka principal, ``<NAME>_*`` settings prefix and OpenTelemetry service name."""
    default_port: int
    """HTTP port when ``<NAME>_PORT`` is unset; also the port inside its container."""
    uid: int
    """Its container user (docker-compose): one user per principal, so no service reads another's secrets.

    Declared rather than derived from an index, so that adding a service never changes the owner
    of another service's files in an existing ``trust`` volume.
    """
    agency: str | None = None
    """The agency it acts for (``contracts.agencies``): the desk is ``one_stop``; None for a service
    that is no agency (notification, console)."""
    documented: bool = True
    """In the AsyncAPI document and the event catalog (False for a pure reader such as the console)."""
    published_port: bool = False
    """docker-compose publishes its port on 127.0.0.1 (people use it from the host)."""
    checks_tokens: bool = False
    """It checks bearer tokens, so its container gets the token issuer's JWKS (``AUTH_JWKS_FILE``)."""
    compose_env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Further environment of its docker-compose service (values may use ``${VAR}`` interpolation)."""

    @property
    def module(self) -> str:
        """The module ``python -m`` runs: ``services.<name>``."""
        return f"{PACKAGE}.{self.name}"

    @property
    def app_module(self) -> str:
        """The module with its ``build_runtime`` and ``create_app``."""
        return f"{self.module}.app"

    @property
    def answers_handoffs(self) -> bool:
        """An agency other than the desk: it takes dossiers handed over and answers them."""
        return self.agency is not None and self.agency != ONE_STOP


def discover(package: str = PACKAGE) -> tuple[ServiceManifest, ...]:
    """Import every sub-package of ``package`` and collect its ``MANIFEST``, in start order.

    Start order is port order: the desk's 8000 first, the console's 8080 last. Raises
    :class:`ManifestError` when names, ports or users clash, or a manifest names another package.
    """
    root = importlib.import_module(package)
    found = []
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda i: i.name):
        if not info.ispkg:
            continue
        manifest = getattr(importlib.import_module(f"{package}.{info.name}"), "MANIFEST", None)
        if manifest is None:
            continue
        if not isinstance(manifest, ServiceManifest):
            raise ManifestError(f"{package}.{info.name}.MANIFEST is not a ServiceManifest")
        if manifest.name != info.name:
            raise ManifestError(f"{package}.{info.name} declares the name {manifest.name!r}")
        found.append(manifest)
    _check_unique(found)
    return tuple(sorted(found, key=lambda m: (m.default_port, m.name)))


def _check_unique(found: Iterable[ServiceManifest]) -> None:
    seen: dict[tuple[str, object], str] = {}
    for manifest in found:
        for what, value in (("port", manifest.default_port), ("uid", manifest.uid)):
            other = seen.setdefault((what, value), manifest.name)
            if other != manifest.name:
                raise ManifestError(f"{other} and {manifest.name} both declare {what} {value}")


@functools.cache
def manifests() -> tuple[ServiceManifest, ...]:
    """Every service of this repository (discovered once per process)."""
    return discover()


def by_name() -> dict[str, ServiceManifest]:
    """Every service's manifest by name, in start order."""
    return {m.name: m for m in manifests()}


def names() -> tuple[str, ...]:
    """Every service's name, in start order."""
    return tuple(m.name for m in manifests())


def default_ports() -> dict[str, int]:
    """Every service's default port, in start order."""
    return {m.name: m.default_port for m in manifests()}


def import_all() -> None:
    """Import every service's application module: the image's build-time check that all are whole."""
    for manifest in manifests():
        importlib.import_module(manifest.app_module)
