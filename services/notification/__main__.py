"""``python -m services.notification``: run the notification service."""

# Guarded, imports included: letter workers (spawned processes) import this module as
# ``__mp_main__`` and must neither start a second service nor load the web stack.
if __name__ == "__main__":
    from services.notification.app import DEFAULT_PORT, create_app
    from services.runtime.http_app import serve
    from services.runtime.settings import ServiceSettings

    settings = ServiceSettings.from_env("notification", default_port=DEFAULT_PORT)
    serve(create_app(settings), settings)
