"""The services: intake (one-stop desk), land_registry, tax, notification, and their runtime."""
