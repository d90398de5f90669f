"""The hub's errors are in the one tree drawn in :mod:`hubbub.exceptions` (issue 14).

The drawing is read back and every edge of it is checked against the classes,
so that a drawing that lies (or a class that moves) fails here.
"""

from __future__ import annotations

import importlib

import pytest

import hubbub.exceptions
from hubbub.exceptions import HubbubError, HubError
from hubbub.hub.auth import AuthError
from hubbub.hub.client import ConnectionLost, InvalidReply
from hubbub.hub.client import HubError as SdkHubError
from hubbub.hub.core.broker import BrokerUnavailable
from hubbub.hub.core.protocol import ErrorCode
from hubbub.hub.core.session import Fail

# Where the drawn classes that hubbub.exceptions does not define live.
HOMES = {
    "AuthError": "hubbub.hub.core.identity",
    "Fail": "hubbub.hub.core.session",
    "BrokerUnavailable": "hubbub.hub.core.broker",
    "ConnectionLost": "hubbub.hub.client.types",
    "InvalidReply": "hubbub.hub.client.types",
}


def drawn_edges() -> list[tuple[str, str]]:
    """(child, parent) for every class in the tree of the module's docstring."""
    doc = hubbub.exceptions.__doc__
    assert doc is not None
    lines = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    stack: list[str] = []
    edges = []
    for line in lines:
        if line.strip() == "HubbubError":
            stack = ["HubbubError"]
            continue
        if "── " not in line:
            continue  # the second line of a description
        column = line.index("── ") + 3
        depth = (column - 8) // 4 + 1
        name = line[column:].split()[0]
        del stack[depth:]
        edges.append((name, stack[-1]))
        stack.append(name)
    return edges


def drawn_class(name: str) -> type:
    module = importlib.import_module(HOMES.get(name, "hubbub.exceptions"))
    cls = getattr(module, name)
    assert isinstance(cls, type)
    return cls


def test_the_drawing_is_read() -> None:
    edges = drawn_edges()
    assert ("InvalidURI", "HandshakeError") in edges
    assert ("HubError", "HubbubError") in edges
    assert ("Fail", "HubError") in edges
    assert ("InvalidReply", "HubbubError") in edges


@pytest.mark.parametrize(("child", "parent"), drawn_edges())
def test_every_drawn_edge_is_a_subclass(child: str, parent: str) -> None:
    assert drawn_class(child).__bases__[0] is drawn_class(parent)


def test_every_hub_error_is_drawn() -> None:
    drawn = {child for child, _ in drawn_edges()}
    for cls in (HubError, AuthError, Fail, BrokerUnavailable, ConnectionLost, InvalidReply):
        assert cls.__name__ in drawn


def test_the_sdk_raises_the_tree_s_hub_error() -> None:
    assert SdkHubError is HubError


def test_codes_and_messages_are_kept() -> None:
    # The node answers with str(exc) and exc.code: the tree must not change them.
    auth = AuthError(ErrorCode.TOKEN_EXPIRED, "token expired")
    assert (str(auth), auth.code) == ("token expired", ErrorCode.TOKEN_EXPIRED)
    fail = Fail(ErrorCode.NOT_SUBSCRIBED, "not subscribed")
    assert (str(fail), fail.code) == ("not subscribed", ErrorCode.NOT_SUBSCRIBED)
    down = BrokerUnavailable("redis: gone")
    assert (str(down), down.code) == ("redis: gone", ErrorCode.BROKER_UNAVAILABLE)


def test_a_lost_connection_is_not_a_refusal() -> None:
    # The SDK retries ConnectionLost and gives up on a HubError: `except HubError`
    # must not catch it.
    assert not issubclass(ConnectionLost, HubError)
    assert not issubclass(InvalidReply, HubError)
    assert issubclass(ConnectionLost, HubbubError)
