"""``python -m services.intake``: run the one-stop desk on INTAKE_HOST:INTAKE_PORT."""

from services.intake.app import DEFAULT_PORT, create_app
from services.runtime.http_app import serve
from services.runtime.settings import ServiceSettings

settings = ServiceSettings.from_env("intake", default_port=DEFAULT_PORT)
serve(create_app(settings), settings)
