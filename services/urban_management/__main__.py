"""``python -m services.urban_management``: run the urban management office."""

from services.runtime.http_app import serve
from services.runtime.settings import ServiceSettings
from services.urban_management.app import DEFAULT_PORT, create_app

settings = ServiceSettings.from_env("urban_management", default_port=DEFAULT_PORT)
serve(create_app(settings), settings)
