"""``hubbub serve`` and ``hubbub token``: the hub's settings from flags, environment and TOML.

Each setting is looked up, in order, in the command-line flag, the environment
variable ``HUBBUB_<NAME>``, the TOML file (``--config`` or ``HUBBUB_CONFIG``),
and finally the default. The TOML file may also describe namespaces and
limits, which have no flags::

    host = "0.0.0.0"
    port = 8765
    secret = "at least 32 random bytes, kept secret"
    api_key = "another secret"
    origins = ["https://app.example.com"]   # pages of other sites that may connect
    workers = 4            # or "auto" (one per CPU); needs broker = "redis://..."

    [limits]               # any HubConfig field (docs/hub.md)
    max_message_bytes = 65536
    command_rate = 50

    [inbox]
    max_len = 1000
    max_age = 604800       # seconds

    [namespaces.chat]      # NamespaceRules (docs/hub.md)
    publish = "subscribers"
    history_size = 1000
    history_ttl = 86400

Without a ``[namespaces]`` table the hub has the default namespace and
``chat`` (1000 entries kept for a day), which the chat page uses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import ssl as ssl_module
import sys
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import config_schema
from .core.config import HubConfig, NamespaceRules
from .core.streams import StreamLimits
from .workers import WorkerRole, refusal, run_workers, worker_count

__all__ = [
    "add_serve_parser",
    "add_token_parser",
    "run_serve",
    "run_token",
    "serve_hub",
    "server_tls",
    "settings",
]

ENV_PREFIX = "HUBBUB_"

# name -> (default, type or parser, help). Booleans are flags; the rest take a value.
SETTINGS: dict[str, tuple[Any, Callable[[Any], Any], str]] = {
    "host": ("127.0.0.1", str, "address to listen on"),
    "port": (8765, int, "TCP port of the chat page, WebSocket endpoint, /healthz, /metrics"),
    "dev": (
        False,
        bool,
        "INSECURE development mode: clients (the chat page) sign in with a bare name. "
        "Anyone can claim any name; never on a reachable hub",
    ),
    "secret": (None, str, "HS256 secret that signs connection tokens (32 bytes or more)"),
    "public_key_file": (None, str, "PEM public key verifying RS256/ES256 tokens"),
    "api_key": (None, str, "enables the HTTP API (POST /api/...) with this key"),
    "max_size": (None, int, "largest WebSocket message in bytes (4 x the request limit)"),
    "ws_path": (
        "/",
        str,
        "another path of the WebSocket endpoint besides / (e.g. /ws behind a proxy); "
        "handshakes on other paths get 404",
    ),
    "broker": (
        "memory",
        str,
        "'memory' (one node) or redis://HOST:PORT/DB to share a hub between nodes (docs/redis.md)",
    ),
    "metrics_token": (None, str, "GET /metrics then needs 'Authorization: Bearer <token>'"),
    "certfile": (None, str, "serve HTTPS and wss:// with this PEM certificate chain"),
    "keyfile": (None, str, "the PEM private key, if not in the certfile"),
    "workers": (
        1,
        worker_count,
        "hub processes sharing the port (SO_REUSEPORT), or 'auto' for one per CPU; more "
        "than 1 needs --broker redis://... (docs/scaling.md)",
    ),
}

MIN_SECRET_BYTES = 32
"""The shortest HS256 secret ``hubbub serve`` accepts (RFC 7518 section 3.2: the hash's size)."""

_CHAT = NamespaceRules(history=StreamLimits(1000, 86400.0))


def setting_kinds() -> dict[str, config_schema.Kind]:
    """What each top-level key of the TOML file accepts (the settings, and ``origins``)."""
    kinds: dict[Callable[[Any], Any], config_schema.Kind] = {
        str: config_schema.STR,
        int: config_schema.INT,
        bool: config_schema.BOOL,
        worker_count: config_schema.WORKERS,
    }
    schema = {name: kinds[kind] for name, (_, kind, _) in SETTINGS.items()}
    schema["origins"] = config_schema.STRINGS
    return schema


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_serve_parser(commands: Any) -> None:
    """Add ``serve`` to the CLI's subcommands."""
    lines = [
        f"  {_flag(n):<18} {ENV_PREFIX}{n.upper():<18} default: {d!r}"
        for n, (d, _, _) in SETTINGS.items()
    ]
    serve = commands.add_parser(
        "serve",
        help="run the messaging hub (chat page at http://127.0.0.1:8765/)",
        description="Run a hub with the in-memory broker. Each setting comes from its flag, "
        "else its environment variable, else the TOML file (--config / HUBBUB_CONFIG), else "
        "its default. A secret, a public key or --dev is required.",
        epilog="settings (flag, environment variable, default):\n"
        + "\n".join(lines)
        + "\n\nThe TOML file takes the same names (host = ..., secret = ...) and the tables "
        "[limits], [inbox] and [namespaces.NAME]; see docs/chat.md and docs/hub.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--config", metavar="FILE", help="TOML settings file (HUBBUB_CONFIG)")
    serve.add_argument(
        "--origin",
        action="append",
        dest="origins",
        default=None,
        metavar="ORIGIN",
        help="a web origin (https://app.example.com) whose pages may connect besides the "
        "hub's own; repeatable; '*' allows any. HUBBUB_ORIGINS (comma-separated) or "
        "origins = [...] in the file. Clients sending no Origin (not browsers) always may",
    )
    for name, (_default, kind, text) in SETTINGS.items():
        if kind is bool:
            serve.add_argument(_flag(name), action="store_true", default=None, help=text)
        else:
            serve.add_argument(_flag(name), type=kind, default=None, help=text)


def add_token_parser(commands: Any) -> None:
    """Add ``token`` to the CLI's subcommands."""
    token = commands.add_parser(
        "token",
        help="mint a connection token (JWT) for a user",
        description="Print a JWT whose 'sub' is USER, signed with the hub's secret (--secret, "
        "HUBBUB_SECRET or the config file) or with --private-key for RS256/ES256.",
    )
    token.add_argument("user", metavar="USER", help="the user id (the token's sub claim)")
    token.add_argument("--config", metavar="FILE", help="TOML settings file (HUBBUB_CONFIG)")
    token.add_argument("--secret", help="HS256 secret (HUBBUB_SECRET)")
    token.add_argument("--private-key", metavar="PEM_FILE", help="sign with this private key")
    token.add_argument(
        "--algorithm", default=None, help="RS256 or ES256 with --private-key (HS256 otherwise)"
    )
    token.add_argument("--ttl", type=float, default=3600.0, help="seconds of validity (3600)")
    token.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="CHANNEL",
        help="grant a private channel (the channels claim; repeatable)",
    )


def _load_toml(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    with Path(path).open("rb") as file:
        return tomllib.load(file)


def _convert(name: str, value: Any, kind: Callable[[Any], Any]) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{name}: expected a boolean, got {value!r}")
    try:
        return kind(value)
    except argparse.ArgumentTypeError as exc:  # a parser's own message
        raise ValueError(f"{name}: {exc}") from None
    except (TypeError, ValueError):
        kind_name = getattr(kind, "__name__", repr(kind))
        raise ValueError(f"{name}: expected {kind_name}, got {value!r}") from None


def settings(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Resolve every setting; return ``(settings, toml)`` (the whole TOML document too).

    Raises:
        ValueError: a value of the wrong type; an unknown key or a key of the
            wrong type in the file (:class:`~hubbub.hub.config_schema.ConfigError`).
        OSError / tomllib.TOMLDecodeError: the config file.
    """
    env = os.environ if environ is None else environ
    toml = _load_toml(getattr(args, "config", None) or env.get(ENV_PREFIX + "CONFIG"))
    config_schema.check(toml, setting_kinds())
    resolved: dict[str, Any] = {}
    for name, (default, kind, _) in SETTINGS.items():
        value = getattr(args, name, None)
        if value is None:
            value = env.get(ENV_PREFIX + name.upper())
        if value is None:
            value = toml.get(name)
        resolved[name] = default if value is None else _convert(name, value, kind)
    origins = getattr(args, "origins", None)
    if origins is None and env.get(ENV_PREFIX + "ORIGINS") is not None:
        origins = [o for o in env[ENV_PREFIX + "ORIGINS"].replace(",", " ").split() if o]
    resolved["origins"] = list(toml.get("origins", ()) if origins is None else origins)
    return resolved, toml


def _rules(table: Mapping[str, Any]) -> NamespaceRules:
    # Checked against config_schema.NAMESPACE already.
    options = {k: v for k, v in table.items() if not k.startswith("history")}
    if table.get("history", True) is False:
        history = StreamLimits(0, None)  # no history, no recovery beyond offsets
    else:
        history = StreamLimits(
            int(table.get("history_size", 100)), table.get("history_ttl", 300.0) or None
        )
    return NamespaceRules(history=history, **options)


def hub_config(toml: Mapping[str, Any]) -> HubConfig:
    """The :class:`HubConfig` described by the TOML tables ``limits``, ``inbox``, ``namespaces``.

    Raises:
        ConfigError: the document does not follow :mod:`~hubbub.hub.config_schema`.
        ValueError: limits :class:`HubConfig` refuses together.
    """
    config_schema.check(toml, setting_kinds())
    limits = dict(toml.get("limits", {}))
    namespaces: dict[str, NamespaceRules] = {"": NamespaceRules(), "chat": _CHAT}
    if "namespaces" in toml:
        namespaces = {n: _rules(t) for n, t in toml["namespaces"].items()}
    inbox = toml.get("inbox")
    if inbox is not None:
        limits["inbox"] = StreamLimits(int(inbox.get("max_len", 1000)), inbox.get("max_age"))
    return HubConfig(namespaces=namespaces, **limits)


async def serve_hub(
    resolved: dict[str, Any],
    config: HubConfig,
    ssl: ssl_module.SSLContext | None = None,
    *,
    role: WorkerRole | None = None,
) -> None:
    """Run the hub until SIGINT or SIGTERM, then shut down cleanly (clients get 4000).

    Args:
        role: this hub is one worker of ``--workers N`` (:mod:`hubbub.hub.workers`):
            it listens with ``SO_REUSEPORT`` and reports its health and metrics.
    """
    from .server import start_hub
    from .server.workers import WorkerReports, publish_reports

    public_key = None
    if resolved["public_key_file"]:
        public_key = Path(resolved["public_key_file"]).read_bytes()
    options: dict[str, Any] = {}
    if resolved["max_size"]:
        options["max_size"] = resolved["max_size"]
    host, dev = resolved["host"], resolved["dev"]
    broker_url = resolved["broker"]
    if broker_url != "memory":
        from .brokers.redis_broker import RedisBroker

        options["broker"] = RedisBroker(broker_url)
    if ssl is not None:
        options["ssl"] = ssl
    reports = None
    if role is not None:
        reports = WorkerReports(role.reports, role.index, role.count)
        options["reports"], options["reuse_port"] = reports, True
    async with start_hub(
        host,
        resolved["port"],
        config=config,
        secret=resolved["secret"],
        public_key=public_key,
        insecure_dev_mode=dev,
        api_key=resolved["api_key"],
        ws_path=resolved["ws_path"],
        metrics_token=resolved["metrics_token"],
        origins=resolved["origins"],
        **options,
    ) as hub:
        publisher = None if reports is None else asyncio.create_task(publish_reports(hub, reports))
        stop = asyncio.get_running_loop().create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                asyncio.get_running_loop().add_signal_handler(sig, stop.cancel)
        if role is None or role.index == 0:  # one banner, not one per worker
            _banner(hub.port, hub.api is not None, resolved, ssl, role)
        with contextlib.suppress(asyncio.CancelledError):
            await stop
        if publisher is not None:
            publisher.cancel()


def _banner(
    port: int,
    api: bool,
    resolved: dict[str, Any],
    ssl: ssl_module.SSLContext | None,
    role: WorkerRole | None,
) -> None:
    host, dev = resolved["host"], resolved["dev"]
    shown = f"[{host}]" if ":" in host else host
    http, ws = ("https", "wss") if ssl is not None else ("http", "ws")
    lines = [
        f"chat page {http}://{shown}:{port}/, WebSocket {ws}://{shown}:{port}/ (hubbub.json.v1)"
    ]
    if role is not None:
        lines[0] += f", {role.count} workers"
    if api:
        lines.append(f"HTTP API at {http}://{shown}:{port}/api/")
    if dev:
        lines.append("INSECURE development mode: anyone can sign in as anyone")
    for line in lines:
        print(f"hubbub hub: {line}", file=sys.stderr, flush=True)


def _serve_worker(resolved: dict[str, Any], config: HubConfig, role: WorkerRole) -> None:
    """One worker of ``--workers N`` (in its forked process): serve until stopped.

    Each worker loads the certificate itself: an SSLContext is not shared across fork safely.
    """
    asyncio.run(serve_hub(resolved, config, server_tls(resolved), role=role))


def server_tls(resolved: Mapping[str, Any]) -> ssl_module.SSLContext | None:
    """The TLS context of the ``certfile`` / ``keyfile`` settings, or None.

    Raises:
        OSError: the files cannot be read or do not hold a certificate and key.
    """
    if not resolved["certfile"]:
        return None
    from ..adapter import server_ssl_context

    context: ssl_module.SSLContext = server_ssl_context(resolved["certfile"], resolved["keyfile"])
    return context


def run_serve(args: argparse.Namespace) -> int:
    """``hubbub serve``: resolve the settings, then run the hub."""
    try:
        resolved, toml = settings(args)
        config = hub_config(toml)
    except (ValueError, TypeError, OSError, tomllib.TOMLDecodeError) as exc:
        print(f"hubbub serve: {exc}", file=sys.stderr)
        return 2
    if not (resolved["secret"] or resolved["public_key_file"] or resolved["dev"]):
        print(
            "hubbub serve: configure a token secret (--secret, HUBBUB_SECRET, or 'secret' in "
            "the config file) or a public key, or pass --dev for the INSECURE development "
            "mode where the chat page signs in with a bare name",
            file=sys.stderr,
        )
        return 2
    secret = resolved["secret"]
    if secret and len(secret.encode()) < MIN_SECRET_BYTES:
        print(
            f"hubbub serve: the token secret is {len(secret.encode())} bytes long; use "
            f'{MIN_SECRET_BYTES} or more, for example the output of: python -c "import '
            'secrets; print(secrets.token_urlsafe(32))" (or --dev without a secret to try '
            "the chat page on this machine)",
            file=sys.stderr,
        )
        return 2
    if resolved["keyfile"] and not resolved["certfile"]:
        print("hubbub serve: --keyfile needs --certfile", file=sys.stderr)
        return 2
    try:
        ssl = server_tls(resolved)
    except OSError as exc:  # ssl.SSLError included
        print(f"hubbub serve: cannot load the certificate: {exc}", file=sys.stderr)
        return 2
    broker = resolved["broker"]
    if broker != "memory" and urlsplit(broker).scheme not in ("redis", "rediss", "unix"):
        print(
            f"hubbub serve: --broker is 'memory' or a redis://, rediss:// or unix:// URL, "
            f"not {broker!r}",
            file=sys.stderr,
        )
        return 2
    refused = refusal(resolved["workers"], broker)
    if refused is not None:
        print(f"hubbub serve: {refused}", file=sys.stderr)
        return 2
    if resolved["workers"] > 1:
        # Each worker loads the certificate itself (an SSLContext is not shared
        # across fork safely); it was checked above.
        return run_workers(_serve_worker, resolved, config, resolved["workers"])
    asyncio.run(serve_hub(resolved, config, ssl))
    return 0


def run_token(args: argparse.Namespace) -> int:
    """``hubbub token USER``: print a connection token."""
    from .auth import mint_token  # needs the hub extra (PyJWT)

    try:
        toml = _load_toml(args.config or os.environ.get(ENV_PREFIX + "CONFIG"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        print(f"hubbub token: {exc}", file=sys.stderr)
        return 2
    key: str | bytes | None
    algorithm = args.algorithm or "HS256"
    if args.private_key:
        key = Path(args.private_key).read_bytes()
        algorithm = args.algorithm or "RS256"
    else:
        key = args.secret or os.environ.get(ENV_PREFIX + "SECRET") or toml.get("secret")
    if not key:
        print("hubbub token: give --secret (or HUBBUB_SECRET) or --private-key", file=sys.stderr)
        return 2
    try:
        token = mint_token(args.user, key, args.ttl, algorithm=algorithm, channels=args.channel)
    except ValueError as exc:
        print(f"hubbub token: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0
