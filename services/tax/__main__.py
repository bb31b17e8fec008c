"""``python -m services.tax``: run the tax authority."""

from services.runtime.http_app import serve
from services.runtime.settings import ServiceSettings
from services.tax.app import DEFAULT_PORT, create_app

settings = ServiceSettings.from_env("tax", default_port=DEFAULT_PORT)
serve(create_app(settings), settings)
