"""The services: intake (one-stop desk), land_registry, tax, notification, console, and their runtime.

Each service's package declares itself with a ``MANIFEST`` (:mod:`services.manifest`); the
packages without one (``runtime``, ``replay``) are libraries.
"""
