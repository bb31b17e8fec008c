"""``python -m services.console``: run the operator console."""

from services.console.app import DEFAULT_PORT, SERVICE, create_app
from services.runtime.http_app import serve
from services.runtime.settings import ServiceSettings

settings = ServiceSettings.from_env(SERVICE, default_port=DEFAULT_PORT)
serve(create_app(settings), settings)
