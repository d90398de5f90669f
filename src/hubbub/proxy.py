"""Proxies for the clients, without I/O: HTTP CONNECT and SOCKS5.

Theory of operation
-------------------

A proxy is reached with a plain TCP connection; a short exchange then asks it
to open a tunnel to the WebSocket server, and from there on the bytes flow
through untouched (TLS for ``wss://`` is negotiated with the server *inside*
the tunnel). The exchange is a tiny state machine in the style of the protocol
core: :meth:`ProxyHandshake.data_to_send` gives the bytes to write,
:meth:`ProxyHandshake.receive_data` takes what arrived, ``done`` tells that
the tunnel is open. The asyncio and blocking clients drive the same objects.

* :class:`HttpConnect`: ``CONNECT host:port HTTP/1.1`` (RFC 9110 section
  9.3.6), with ``Proxy-Authorization: Basic`` (RFC 7617) when the proxy URL
  carries credentials. Any 2xx opens the tunnel.
* :class:`Socks5Connect`: RFC 1928, with username/password authentication
  (RFC 1929) when the proxy URL carries credentials. The host name is sent to
  the proxy, which resolves it (ATYP 3), for ``socks5://`` and ``socks5h://``
  alike: the sans-I/O core never resolves names, and the proxy is usually
  better placed to do it.

:func:`select_proxy` picks the proxy for a URI from the ``proxy`` option or,
by default, from the usual environment variables: ``https_proxy`` for
``wss://``, ``http_proxy`` for ``ws://``, then ``all_proxy`` (lowercase names
win over uppercase ones), and ``no_proxy`` to bypass. Like Go's
``ProxyFromEnvironment``, loopback targets never use a proxy from the
environment; an explicit ``proxy=`` option always applies.
"""

from __future__ import annotations

import base64
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .exceptions import ProxyError
from .protocol.handshake import WebSocketURI

__all__ = [
    "HttpConnect",
    "Proxy",
    "ProxyError",
    "ProxyHandshake",
    "Socks5Connect",
    "parse_proxy",
    "select_proxy",
]

_MAX_HEAD = 16384  # a CONNECT answer is a few hundred bytes; refuse to buffer more


@dataclass(frozen=True)
class Proxy:
    """A proxy URL: ``http://[user:password@]host[:port]`` or ``socks5[h]://...``."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    def handshake(self, host: str, port: int) -> ProxyHandshake:
        """A new exchange that asks this proxy for a tunnel to ``host:port``."""
        if self.scheme == "http":
            return HttpConnect(host, port, self.username, self.password)
        return Socks5Connect(host, port, self.username, self.password)

    def __str__(self) -> str:
        # Never show the password (it ends up in logs).
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{user}{host}:{self.port}"


_DEFAULT_PORTS = {"http": 8080, "socks5": 1080, "socks5h": 1080}


def parse_proxy(url: str) -> Proxy:
    """Parse a proxy URL; a bare ``host:port`` means an HTTP proxy.

    Raises:
        ValueError: unsupported scheme (``https://`` proxies are not supported)
            or no host.
    """
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"unsupported proxy scheme {scheme!r}: use http, socks5 or socks5h")
    if not parts.hostname:
        raise ValueError(f"proxy URL without a host: {url!r}")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return Proxy(scheme, parts.hostname, parts.port or _DEFAULT_PORTS[scheme], username, password)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bypassed(uri: WebSocketURI, no_proxy: str) -> bool:
    """Apply ``no_proxy``: ``*``, host names, ``.domain`` suffixes, IPs, CIDRs, ``:port``."""
    host = uri.host.lower().rstrip(".")
    for raw in no_proxy.replace(" ", ",").split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name, port = entry, None
        if entry.startswith("[") and "]" in entry:
            name, _, rest = entry[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else None
        elif entry.count(":") == 1:
            name, port = entry.split(":")
        if port is not None and port != str(uri.port):
            continue
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(name, strict=False):
                return True
            continue
        except ValueError:
            pass
        name = name.lstrip("*").lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


def _env(environ: Mapping[str, str], name: str) -> str | None:
    # curl and Python's urllib prefer the lowercase spelling.
    return environ.get(name) or environ.get(name.upper()) or None


def select_proxy(
    uri: WebSocketURI,
    proxy: str | Proxy | bool | None = True,
    environ: Mapping[str, str] | None = None,
) -> Proxy | None:
    """Choose the proxy to reach ``uri``, or ``None`` for a direct connection.

    Args:
        uri: the WebSocket URI to reach.
        proxy: a proxy URL or :class:`Proxy` (always used); ``True`` (the
            default of the clients) to read the environment; ``None`` or
            ``False`` for a direct connection.
        environ: the environment to read (``os.environ`` by default).
    """
    if proxy is None or proxy is False:
        return None
    if isinstance(proxy, Proxy):
        return proxy
    if isinstance(proxy, str):
        return parse_proxy(proxy)
    environ = os.environ if environ is None else environ
    if _is_loopback(uri.host):
        return None
    no_proxy = _env(environ, "no_proxy")
    if no_proxy and _bypassed(uri, no_proxy):
        return None
    url = _env(environ, "https_proxy" if uri.secure else "http_proxy") or _env(environ, "all_proxy")
    return parse_proxy(url) if url else None


class ProxyHandshake:
    """The exchange that opens a tunnel; see the module docstring.

    After ``done``, ``extra`` holds bytes that arrived behind the proxy's
    answer: they already belong to the tunnel.
    """

    def __init__(self) -> None:
        self.done = False
        self.extra = b""
        self._out: list[bytes] = []
        self._buf = bytearray()

    def data_to_send(self) -> bytes:
        """The bytes to write to the proxy now."""
        out, self._out = b"".join(self._out), []
        return out

    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the proxy.

        Raises:
            ProxyError: the proxy refused, or answered something unexpected.
        """
        if self.done:
            self.extra += data
            return
        self._buf += data
        self._parse()

    def receive_eof(self) -> None:
        """The proxy closed the connection before the tunnel was open."""
        if not self.done:
            raise ProxyError("the proxy closed the connection", transient=True)

    def _parse(self) -> None:
        raise NotImplementedError


class HttpConnect(ProxyHandshake):
    """``CONNECT host:port`` through an HTTP proxy (RFC 9110 section 9.3.6)."""

    def __init__(
        self, host: str, port: int, username: str | None = None, password: str | None = None
    ) -> None:
        super().__init__()
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if username is not None:
            # RFC 7617: Basic credentials are base64("user:password") in UTF-8.
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            lines.append(f"Proxy-Authorization: Basic {token}")
        self._out.append(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _parse(self) -> None:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > _MAX_HEAD:
                raise ProxyError("the proxy's answer to CONNECT is too long")
            return
        head = bytes(self._buf[:end]).decode("latin-1")
        status_line = head.split("\r\n", 1)[0]
        # Proxies answer HTTP/1.0 as often as HTTP/1.1 (tinyproxy does).
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise ProxyError(f"invalid answer from the proxy: {status_line[:100]!r}")
        status = int(code)
        if not 200 <= status < 300:
            # RFC 9110 section 9.3.6: "Any 2xx (Successful) response indicates
            # that the sender ... will switch to tunnel mode"; anything else is
            # a refusal. 407 asks for (other) credentials.
            raise ProxyError(
                f"proxy refused CONNECT: HTTP {status} {reason}".rstrip(),
                status,
                transient=status in (502, 503, 504),
            )
        self.done = True
        self.extra = bytes(self._buf[end + 4 :])
        self._buf = bytearray()


# RFC 1928 section 6: reply codes, and whether trying again may help.
_SOCKS_REPLIES = {
    1: ("general SOCKS server failure", True),
    2: ("connection not allowed by ruleset", False),
    3: ("network unreachable", True),
    4: ("host unreachable", True),
    5: ("connection refused", True),
    6: ("TTL expired", True),
    7: ("command not supported", False),
    8: ("address type not supported", False),
}


class Socks5Connect(ProxyHandshake):
    """A SOCKS5 ``CONNECT`` (RFC 1928), with RFC 1929 authentication if given."""

    def __init__(
        self, host: str, port: int, username: str | None = None, password: str | None = None
    ) -> None:
        super().__init__()
        self._host = host
        self._port = port
        self._username = username
        self._password = password or ""
        self._step = "method"
        # RFC 1928 section 3: VER=5, NMETHODS, METHODS. 0 = no authentication,
        # 2 = username/password; offer the latter only with credentials.
        methods = b"\x00\x02" if username is not None else b"\x00"
        self._out.append(bytes([5, len(methods)]) + methods)

    def _request(self) -> bytes:
        # RFC 1928 section 4: VER CMD=1 (CONNECT) RSV ATYP DST.ADDR DST.PORT.
        try:
            ip = ipaddress.ip_address(self._host)
        except ValueError:
            name = self._host.encode("idna")
            if len(name) > 255:
                raise ProxyError(f"host name too long for SOCKS5: {self._host}") from None
            address = b"\x03" + bytes([len(name)]) + name
        else:
            address = (b"\x01" if ip.version == 4 else b"\x04") + ip.packed
        return b"\x05\x01\x00" + address + self._port.to_bytes(2, "big")

    def _parse(self) -> None:
        buf = self._buf
        if self._step == "method":
            if len(buf) < 2:
                return
            if buf[0] != 5:
                raise ProxyError("not a SOCKS5 proxy")
            method = buf[1]
            del buf[:2]
            if method == 0x00:
                self._step = "reply"
                self._out.append(self._request())
            elif method == 0x02 and self._username is not None:
                # RFC 1929 section 2: VER=1 ULEN UNAME PLEN PASSWD.
                user = self._username.encode()
                password = self._password.encode()
                if len(user) > 255 or len(password) > 255:
                    raise ProxyError("SOCKS5 username or password longer than 255 bytes")
                self._out.append(
                    b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password
                )
                self._step = "auth"
            else:
                # 0xFF: "NO ACCEPTABLE METHODS" (the proxy wants credentials).
                raise ProxyError("the SOCKS5 proxy accepts none of the offered methods")
        if self._step == "auth":
            if len(buf) < 2:
                return
            status = buf[1]
            del buf[:2]
            if status != 0:
                raise ProxyError("SOCKS5 authentication failed", status)
            self._step = "reply"
            self._out.append(self._request())
        if self._step == "reply":
            if len(buf) < 5:
                return
            if buf[0] != 5:
                raise ProxyError("invalid SOCKS5 reply")
            rep = buf[1]
            if rep != 0:
                text, transient = _SOCKS_REPLIES.get(rep, (f"reply {rep}", False))
                raise ProxyError(f"SOCKS5 proxy failed to connect: {text}", rep, transient)
            atyp = buf[3]
            if atyp == 1:
                size = 4 + 4 + 2
            elif atyp == 4:
                size = 4 + 16 + 2
            elif atyp == 3:
                size = 4 + 1 + buf[4] + 2
            else:
                raise ProxyError(f"invalid SOCKS5 address type {atyp}")
            if len(buf) < size:
                return
            self.done = True
            self.extra = bytes(buf[size:])
            self._buf = bytearray()
