"""The ``hubbub`` command (also ``python -m hubbub``).

Subcommands:

* ``hubbub echo``: an echo server (for tests, Autobahn and benchmarks). With
  ``--broadcast`` a text message ``broadcast:<payload>`` is sent to every
  connection instead of echoed.
* ``hubbub connect URL``: an interactive client in the spirit of wscat; typed
  lines are sent, received messages printed; works with piped stdin.
* ``hubbub serve``: the messaging hub and its chat page; ``hubbub token USER``
  mints a connection token (both in :mod:`hubbub.hub.settings`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .exceptions import ConnectionClosed, HubbubError, MissingExtra, install_hint

__all__ = ["main"]


def _install_uvloop() -> str:
    """Use uvloop when it is installed (``pip install hubbub[speed]``)."""
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def _tune_malloc() -> None:
    """Keep freed heap memory for reuse in server processes (glibc only).

    Every received message is a new ``bytes``; with glibc's defaults a large one
    is mmap()ed and the heap is trimmed after each free, so each 64 KiB or
    1 MiB message pays for fresh pages (page faults) again. Raising the mmap
    and trim thresholds lets the allocator reuse them. ``MALLOC_*`` variables
    set by the user win.
    """
    if not sys.platform.startswith("linux") or any(k.startswith("MALLOC_") for k in os.environ):
        return
    with contextlib.suppress(Exception):
        import ctypes
        import platform

        if platform.libc_ver()[0] != "glibc":
            return
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
        libc.mallopt(m_mmap_threshold, 32 * 2**20)
        libc.mallopt(m_trim_threshold, 128 * 2**20)


def _tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a long-running server.

    Everything imported so far lives as long as the process: ``gc.freeze()``
    moves it out of the collector's sight, so full collections no longer scan
    it again and again. A burst of new connections allocates many long-lived
    objects, which triggers collections that find nothing; a higher first
    threshold makes them rarer. Reference counting frees everything else as
    before.
    """
    import gc

    gc.collect()
    gc.freeze()
    threshold0, threshold1, threshold2 = gc.get_threshold()
    gc.set_threshold(max(threshold0, 10_000), threshold1, threshold2)


def _raise_nofile_limit() -> None:
    # Many connections need many file descriptors; the soft limit is often 1024.
    with contextlib.suppress(Exception):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _size(value: str) -> int:
    """Parse a size such as ``1048576``, ``64KiB`` or ``16MiB``."""
    units = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "kb": 1000, "mb": 10**6, "b": 1}
    text = value.strip().lower()
    unit = next((u for u in units if text.endswith(u)), "b")
    factor = units[unit]
    number = text.removesuffix(unit).strip()
    try:
        size = int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {value!r} (try 1048576 or 16MiB)") from None
    if size <= 0:
        raise argparse.ArgumentTypeError("a size must be positive")
    return size


def _header(value: str) -> tuple[str, str]:
    name, sep, content = value.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"a header is NAME:VALUE, got {value!r}")
    return name.strip(), content.strip()


def _add_tls_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--certfile",
        metavar="PEM",
        help="serve TLS (wss://) with this certificate chain (docs/howto/tls.md)",
    )
    parser.add_argument("--keyfile", metavar="PEM", help="the private key, if not in --certfile")


def _server_tls(args: argparse.Namespace) -> Any:
    """The server's TLS context from ``--certfile``/``--keyfile``, or None."""
    from .adapter import server_ssl_context

    if args.certfile is None:
        return None
    return server_ssl_context(args.certfile, args.keyfile)


def _bench_runner() -> Path | None:
    """``benchmarks/run.py`` of the source tree this package runs from, if any.

    The benchmarks compare hubbub with other servers and need the source tree
    (peers in several languages, a C load generator): an installed package
    does not offer ``hubbub bench`` at all.
    """
    for parent in Path(__file__).resolve().parents:
        runner = parent / "benchmarks" / "run.py"
        if runner.is_file():
            return runner
    return None


def build_parser() -> argparse.ArgumentParser:
    from .versions import describe

    parser = argparse.ArgumentParser(
        prog="hubbub", description="Real-time, two-way communication over WebSocket."
    )
    parser.add_argument("--version", action="version", version=describe())
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging: -v INFO, -vv DEBUG"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    echo = commands.add_parser(
        "echo",
        help="run a WebSocket echo server",
        description="Echo every message back to its sender.",
    )
    echo.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    echo.add_argument("--port", type=int, default=8765, help="TCP port (8765; 0 picks one)")
    echo.add_argument("--unix", metavar="PATH", help="listen on a Unix socket instead")
    echo.add_argument(
        "--subprotocol",
        action="append",
        default=[],
        metavar="NAME",
        help="accept this subprotocol when a client offers it (repeatable)",
    )
    echo.add_argument(
        "--origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="accept browsers from this Origin only (repeatable); clients that send no "
        "Origin are accepted. Without it, any origin is accepted",
    )
    echo.add_argument(
        "--max-size",
        type=_size,
        default=2**20,
        metavar="SIZE",
        help="largest message accepted (1MiB)",
    )
    echo.add_argument(
        "--no-compression", action="store_true", help="do not negotiate permessage-deflate"
    )
    echo.add_argument(
        "--broadcast",
        action="store_true",
        help="answer 'broadcast:<payload>' by sending <payload> to every connection",
    )
    echo.add_argument(
        "--ping-interval",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="keepalive ping interval, 0 to disable (20)",
    )
    _add_tls_server_options(echo)

    if _bench_runner() is not None:
        bench = commands.add_parser(
            "bench",
            help="benchmark hubbub against other servers (benchmarks/run.py)",
            description="Run the project's benchmark runner; options after 'bench' go to it "
            "(try: hubbub bench --help).",
            add_help=False,
        )
        bench.add_argument("bench_args", nargs=argparse.REMAINDER)

    connect = commands.add_parser(
        "connect",
        help="interactive WebSocket client",
        description="Send typed (or piped) lines; print what arrives.",
    )
    connect.add_argument("url", help="ws:// or wss:// URL")
    connect.add_argument(
        "-H",
        "--header",
        action="append",
        type=_header,
        default=[],
        metavar="NAME:VALUE",
        help="extra request header (repeatable)",
    )
    connect.add_argument(
        "-s",
        "--subprotocol",
        action="append",
        default=[],
        metavar="NAME",
        help="offer this subprotocol (repeatable)",
    )
    connect.add_argument("--origin", help="Origin header to send")
    connect.add_argument("--binary", action="store_true", help="send lines as binary messages")
    connect.add_argument(
        "--no-compression", action="store_true", help="do not offer permessage-deflate"
    )
    connect.add_argument(
        "--insecure",
        action="store_true",
        help="wss:// without certificate verification (testing only)",
    )
    connect.add_argument(
        "--cafile",
        metavar="PEM",
        help="trust the certificates in this file (a private CA, a self-signed server)",
    )
    connect.add_argument(
        "--wait",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="after stdin ends, wait this long for replies before closing (1)",
    )
    connect.add_argument(
        "--max-size",
        type=_size,
        default=2**20,
        metavar="SIZE",
        help="largest message accepted (1MiB)",
    )
    from .hub.settings import add_serve_parser, add_token_parser

    add_serve_parser(commands)
    add_token_parser(commands)
    for name, command in commands.choices.items():
        if name != "bench":  # every option after "bench" belongs to the runner
            # -v after the subcommand too (hubbub serve -v); added to the one before.
            command.add_argument(
                "-v",
                "--verbose",
                action="count",
                default=0,
                dest="verbose_after",
                help="more logging: -v INFO, -vv DEBUG",
            )
    return parser


def _compression(disabled: bool) -> str | None:
    return None if disabled else "deflate"


async def run_echo(args: argparse.Namespace) -> None:
    from .asyncio import serve
    from .asyncio.broadcast import broadcast
    from .asyncio.server import ServerConnection

    server_ref: list[Any] = []

    def handler(ws: ServerConnection) -> None:
        # Callback mode (Connection.on_message): each message is answered from
        # the read callback, with no Future or Task step per message; a plain
        # function handler, so no Task per connection either.
        def on_message(message: str | bytes) -> None:
            if args.broadcast and isinstance(message, str) and message.startswith("broadcast:"):
                # One frame encoded once, written to every open connection;
                # slow consumers are skipped (hubbub.asyncio.broadcast).
                broadcast(server_ref[0].connections, message[len("broadcast:") :])
            else:
                ws.send_nowait(message)

        ws.on_message = on_message

    options: dict[str, Any] = dict(
        subprotocols=args.subprotocol,
        max_size=args.max_size,
        compression=_compression(args.no_compression),
        ping_interval=args.ping_interval or None,
    )
    if args.origin:
        # RFC 6455 section 10.2; None: clients that send no Origin (not browsers).
        options["origins"] = [*args.origin, None]
    ssl = _server_tls(args)
    if args.unix:
        server = await serve(handler, unix_path=args.unix, ssl=ssl, **options)
        where = f"unix:{args.unix}"
    else:
        server = await serve(handler, args.host, args.port, ssl=ssl, **options)
        where = f"{'wss' if ssl else 'ws'}://{args.host}:{server.port}"
    server_ref.append(server)
    print(f"hubbub echo listening on {where}", file=sys.stderr, flush=True)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(sig, stop.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await stop
    server.close()
    await server.wait_closed()


def _show(message: str | bytes, prefix: str) -> str:
    if isinstance(message, bytes):
        return f"{prefix}<binary {len(message)} bytes: {message[:64].hex(' ')}>"
    return f"{prefix}{message}"


async def run_connect(args: argparse.Namespace) -> int:
    import ssl

    from .asyncio import connect

    options: dict[str, Any] = dict(
        additional_headers=args.header,
        subprotocols=args.subprotocol,
        origin=args.origin,
        compression=_compression(args.no_compression),
        max_size=args.max_size,
    )
    if args.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        options["ssl"] = context
    elif args.cafile:
        options["ssl"] = ssl.create_default_context(cafile=args.cafile)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    prefix_in, prefix_out = ("< ", "> ") if interactive else ("", "")
    ws = await connect(args.url, **options)
    extra = f" (subprotocol: {ws.subprotocol})" if ws.subprotocol else ""
    print(f"connected to {args.url}{extra}", file=sys.stderr, flush=True)
    loop = asyncio.get_running_loop()

    async def printer() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                if interactive:
                    # The prompt, and maybe half a typed line, is on the
                    # screen: clear that line, print the message on it, then
                    # draw the prompt again with what was typed (as wscat).
                    text = _show(message, prefix_in)
                    sys.stdout.write(f"\r\x1b[K{text}\n{prefix_out}{_typed()}")
                    sys.stdout.flush()
                else:
                    print(_show(message, prefix_in), flush=True)

    reader = asyncio.ensure_future(printer())

    lines: asyncio.Queue[str] = asyncio.Queue()

    def read_stdin() -> None:
        # A daemon thread, not run_in_executor(): asyncio.run() joins the
        # executor's threads on exit, so a readline() blocked on a terminal or
        # an open pipe would keep the client alive after the server closed.
        while True:
            if interactive:
                try:
                    # input() with readline: line editing, and _typed() can
                    # tell what is typed so far.
                    line = input(prefix_out) + "\n"
                except EOFError:
                    line = ""
            else:
                line = sys.stdin.readline()
            try:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            except RuntimeError:  # the loop is closed: the client is exiting
                return
            if not line:
                return

    threading.Thread(target=read_stdin, name="hubbub-stdin", daemon=True).start()

    async def sender() -> None:
        while True:
            line = await lines.get()
            if not line:
                return
            text = line.rstrip("\r\n")
            await ws.send(text.encode() if args.binary else text)

    writer = asyncio.ensure_future(sender())
    done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
    if writer in done and not reader.done():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(reader), args.wait)
        await ws.close()
    await reader
    writer.cancel()
    exc = writer.exception() if writer.done() and not writer.cancelled() else None
    if exc is not None and not isinstance(exc, ConnectionClosed):
        raise exc
    reason = f" {ws.close_reason}" if ws.close_reason else ""
    if interactive:  # the prompt is on the screen: say it on its line instead
        print("\r\x1b[K", end="", flush=True)
    print(f"disconnected: {ws.close_code}{reason}", file=sys.stderr, flush=True)
    return 0 if ws.close_code in (1000, 1001, 1005) else 1


def _typed() -> str:
    """What the user typed on the prompt's line so far ("" without readline)."""
    try:
        import readline
    except ImportError:  # pragma: no cover - Windows
        return ""
    return readline.get_line_buffer()


def run_bench(bench_args: list[str]) -> int:
    """Run ``benchmarks/run.py`` of the source tree (it is not installed with the package)."""
    import subprocess

    runner = _bench_runner()
    if runner is None:
        print(
            "hubbub: 'bench' runs from a source checkout only (git clone the project, then "
            "./scripts/test.sh and hubbub bench); it is not part of the installed package",
            file=sys.stderr,
        )
        return 2
    env = dict(os.environ, HUBBUB_PYTHON=sys.executable)
    return subprocess.call([sys.executable, str(runner), *bench_args], env=env)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["bench"]:  # every option after "bench" belongs to the runner
        return run_bench(arguments[1:])
    args = build_parser().parse_args(arguments)
    verbose = args.verbose + getattr(args, "verbose_after", 0)
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "echo" and args.keyfile and not args.certfile:
        print("hubbub echo: --keyfile needs --certfile", file=sys.stderr)
        return 2
    loop = _install_uvloop()
    _raise_nofile_limit()
    if args.command in ("echo", "serve"):
        from .versions import describe

        # Whoever reads the log of a server can tell how fast it can be.
        logging.getLogger("hubbub.server").info("%s, event loop %s", describe(), loop)
    try:
        if args.command == "echo":
            _tune_malloc()
            _tune_gc()
            asyncio.run(run_echo(args))
            return 0
        if args.command in ("serve", "token"):
            from .hub.settings import run_serve, run_token

            if args.command == "serve":
                _tune_gc()
            return run_serve(args) if args.command == "serve" else run_token(args)
        return asyncio.run(run_connect(args))
    except KeyboardInterrupt:
        return 130
    except MissingExtra as exc:  # one line that names the extra to install
        print(
            f"hubbub {args.command} needs the {exc.extra} extra: {install_hint(exc.extra)}",
            file=sys.stderr,
        )
        return 1
    except HubbubError as exc:
        print(f"hubbub: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"hubbub: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
