"""``python -m services.notification``: run the notification service."""

from services.notification.app import DEFAULT_PORT, create_app
from services.runtime.http_app import serve
from services.runtime.settings import ServiceSettings

settings = ServiceSettings.from_env("notification", default_port=DEFAULT_PORT)
serve(create_app(settings), settings)
