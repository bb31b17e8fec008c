"""``python -m services.land_registry``: run the land registry office."""

from services.land_registry.app import DEFAULT_PORT, create_app
from services.runtime.http_app import serve
from services.runtime.settings import ServiceSettings

settings = ServiceSettings.from_env("land_registry", default_port=DEFAULT_PORT)
serve(create_app(settings), settings)
