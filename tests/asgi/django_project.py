"""A minimal Django ASGI project with the hub mounted at /hub (tests/asgi/test_django.py).

What docs/asgi.md shows a Django user: ``asgi.py`` wraps Django's application with
:func:`hubbub.hub.server.asgi.with_hub`, and views publish through the hub's Python API.
Settings live here too (``DJANGO_SETTINGS_MODULE=django_project``).
"""

from __future__ import annotations

import json

from asgiref.sync import async_to_sync
from django.http import HttpRequest, JsonResponse
from django.urls import path

from hubbub.hub.server.asgi import asgi_app, with_hub

# --- settings.py ---------------------------------------------------------------------

SECRET_KEY = "tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "django_project"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, object] = {}
USE_TZ = True

# --- the hub (e.g. myproject/hub.py) ------------------------------------------------

hub = asgi_app(insecure_dev_mode=True)  # INSECURE: tests only; use secret= or authenticate=


# --- views.py ------------------------------------------------------------------------


async def announce(request: HttpRequest) -> JsonResponse:
    """An async view: await the hub's Python API directly."""
    text = json.loads(request.body)["text"]
    return JsonResponse(await hub.publish("chat:lobby", {"text": text, "via": "async view"}))


def notify(request: HttpRequest, user: str) -> JsonResponse:
    """A sync view: Django runs it in a thread; async_to_sync reaches the hub's loop."""
    results = async_to_sync(hub.send)([user], {"text": "from a sync view"})
    return JsonResponse({"results": results})


urlpatterns = [path("announce", announce), path("notify/<str:user>", notify)]


# --- asgi.py -------------------------------------------------------------------------


def application() -> object:
    """``application = with_hub(get_asgi_application(), hub)``, built once settings load."""
    from django.core.asgi import get_asgi_application

    return with_hub(get_asgi_application(), hub, "/hub")
