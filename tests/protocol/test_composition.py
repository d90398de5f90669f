"""The core is composed of owned parts, not mixins (issue 14).

Done when "no mixin class whose methods call methods it does not define": the
static check below reads every class of ``hubbub.protocol`` and fails on an
attribute of ``self`` that neither the class nor a base it inherits from in
the package defines (a method, a property, a class attribute, or an
assignment ``self.x = ...`` in one of its methods). Annotations alone do not
count: that is how a mixin used to borrow its host's state. The other tests
check the wiring the connection does: one limits object handed to its parts,
one extensions list, one outgoing list.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
from protocol_testing import OP_BINARY, OP_TEXT, client_frame, fragments, open_pair, sent_frames

import hubbub.protocol
from hubbub.exceptions import LocalProtocolError, PayloadTooBig
from hubbub.protocol import Connection, Limits, ServerConnection, Side
from hubbub.protocol.permessage_deflate import ServerPerMessageDeflateFactory
from hubbub.protocol.sending import FrameWriter

PACKAGE = Path(hubbub.protocol.__file__).parent


def _defined_by(node: ast.ClassDef) -> set[str]:
    names: set[str] = set()
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(item.name)
            for sub in ast.walk(item):
                for target in _targets(sub):
                    if (
                        isinstance(target, ast.Attribute)
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "self"
                    ):
                        names.add(target.attr)
        elif isinstance(item, ast.Assign):
            for target in item.targets:
                if isinstance(target, ast.Name):
                    names.add(target.id)
        elif (
            isinstance(item, ast.AnnAssign)
            and isinstance(item.target, ast.Name)
            and (item.value is not None or _is_dataclass(node))
        ):
            # A class attribute with a value, or a dataclass field.
            names.add(item.target.id)
    return names


def _is_dataclass(node: ast.ClassDef) -> bool:
    return any("dataclass" in ast.unparse(d) for d in node.decorator_list)


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return [t for target in node.targets for t in _flatten(target)]
    if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        return [node.target]
    return []


def _flatten(target: ast.expr) -> list[ast.expr]:
    if isinstance(target, ast.Tuple):
        return [t for item in target.elts for t in _flatten(item)]
    return [target]


def _used_by(node: ast.ClassDef) -> set[tuple[str, int]]:
    used = set()
    for sub in ast.walk(node):
        if (
            isinstance(sub, ast.Attribute)
            and isinstance(sub.value, ast.Name)
            and sub.value.id == "self"
        ):
            used.add((sub.attr, sub.lineno))
    return used


def foreign_attributes(sources: dict[str, str]) -> list[str]:
    """``file:line: Class.attr`` for each use of ``self.attr`` that nothing defines.

    Bases outside ``sources`` (``object``, ``Exception``, ``Protocol``...)
    contribute what Python gives them: ``dir()`` of the builtin base.
    """
    classes: dict[str, tuple[str, ast.ClassDef]] = {}
    for name, source in sources.items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef):
                classes[node.name] = (name, node)

    def defined(class_name: str) -> set[str]:
        node = classes[class_name][1]
        names = _defined_by(node)
        for base in node.bases:
            base_name = ast.unparse(base).split(".")[-1].split("[")[0]
            if base_name in classes:
                names |= defined(base_name)
            else:
                names |= set(dir(getattr(__builtins__, base_name, object)))
        return names | set(dir(object))

    found = []
    for class_name, (file, node) in classes.items():
        names = defined(class_name)
        for attr, line in sorted(_used_by(node), key=lambda item: item[1]):
            if attr not in names:
                found.append(f"{file}:{line}: {class_name}.{attr}")
    return found


def test_no_class_of_the_core_uses_what_it_does_not_define() -> None:
    sources = {path.name: path.read_text() for path in sorted(PACKAGE.glob("*.py"))}
    assert foreign_attributes(sources) == []


def test_the_check_finds_a_mixin() -> None:
    """The shape the core had: a mixin that calls its host's method and reads its state."""
    mixin = """
class Assembler:
    extensions: list
    def data_frame(self, data):
        if self.extensions:
            self._write(data)

class Connection(Assembler):
    def __init__(self):
        self.extensions = []
    def _write(self, data):
        pass
"""
    assert foreign_attributes({"mixin.py": mixin}) == [
        "mixin.py:5: Assembler.extensions",
        "mixin.py:6: Assembler._write",
    ]


def test_the_connection_inherits_from_no_part() -> None:
    assert Connection.__mro__ == (Connection, object)


# --- the wiring -----------------------------------------------------------------


def test_one_limits_object_is_handed_to_the_parts() -> None:
    limits = Limits(max_size=1000, decode_limit=5000)
    one, two = Connection(Side.SERVER, limits=limits), Connection(Side.SERVER, limits=limits)
    for conn in (one, two):
        assert conn.limits is conn.reader.limits is conn.assembler.limits is limits
    assert (one.max_size, one.decode_limit) == (1000, 5000)


def test_changing_max_size_reaches_the_frame_reader_and_the_assembler() -> None:
    _, server = open_pair()
    server.max_size = 10
    assert server.limits == Limits(max_size=10)
    assert server.reader.limits is server.assembler.limits is server.limits
    # Judged from the header (the reader) and when fragments join (the assembler).
    server.receive_data(fragments(server, OP_TEXT, [b"123456", b"78901"]))
    (close,) = sent_frames(server)
    assert close.close[0] == 1009


def test_changing_decode_limit_keeps_max_size() -> None:
    conn = Connection(Side.SERVER, max_size=123)
    conn.decode_limit = 4096
    assert conn.limits == Limits(max_size=123, decode_limit=4096)
    assert conn.reader.limits is conn.limits


def test_limits_are_frozen_and_checked() -> None:
    limits = Limits()
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_size = 5  # type: ignore[misc]
    with pytest.raises(ValueError, match="max_size"):
        Limits(max_size=-1)
    with pytest.raises(ValueError, match="decode_limit"):
        Limits(decode_limit=-1)
    assert Limits(max_size=None).parse_max_size == -1
    assert dataclasses.replace(limits, max_size=7).parse_max_size == 7


def test_limits_check_message_is_the_max_size_rule() -> None:
    limits = Limits(max_size=100)
    limits.check_message(100)
    with pytest.raises(PayloadTooBig) as caught:
        limits.check_message(101)
    assert (caught.value.code, caught.value.max_size) == (1009, 100)
    Limits(max_size=None).check_message(2**62)
    # Compressed frames get the slack of a few bytes per block; others none.
    limits.check_frame(100 + (100 >> 6) + 64, transformed=True)
    with pytest.raises(PayloadTooBig):
        limits.check_frame(101, transformed=False)


def test_negotiated_extensions_reach_every_part() -> None:
    server = ServerConnection(extensions=[ServerPerMessageDeflateFactory()])
    assert server.extensions == []
    deflate = ServerPerMessageDeflateFactory().process_request_params([], [])[1]
    server.extensions = [deflate]
    assert server.reader.extensions is server.extensions
    assert server.assembler.extensions is server.extensions
    assert server.writer.extensions is server.extensions
    assert not server.shares_frames


def test_outgoing_is_one_list_an_adapter_drains() -> None:
    conn = Connection(Side.SERVER)
    out = conn.outgoing
    assert out is conn.writer.outgoing
    conn.send_text(b"one")
    conn.send_binary(b"two")
    conn.send_ping(b"p")
    assert len(out) == conn.pending_chunks == 3
    written = list(out)  # what an adapter writes, then:
    out.clear()
    assert conn.outgoing is out
    conn.send_text(b"three")
    assert conn.data_to_send() == [b"\x81\x05three"]
    assert conn.outgoing is out
    assert not out
    assert [bytes(chunk[2:]) for chunk in written] == [b"one", b"two", b"p"]


def test_data_to_send_returns_a_list_that_later_sends_do_not_touch() -> None:
    conn = Connection(Side.SERVER)
    conn.send_text(b"a")
    taken = conn.data_to_send()
    conn.send_text(b"b")
    assert taken == [b"\x81\x01a"]


def test_events_received_returns_a_list_that_later_reads_do_not_touch() -> None:
    _, server = open_pair()
    server.receive_data(client_frame(OP_TEXT, b"a"))
    taken = server.events_received()
    server.receive_data(client_frame(OP_BINARY, b"b"))
    assert taken == ["a"]
    assert server.pending_events == [b"b"]
    assert server.assembler.events is server.pending_events


def test_connections_with_the_same_bounds_share_one_limits_object() -> None:
    """An idle server's thousands of connections do not each own their bounds."""
    one, two = Connection(Side.SERVER), ServerConnection()
    assert one.limits is two.limits
    one.decode_limit = 4096
    two.decode_limit = 4096
    assert one.limits is two.limits
    assert Connection(Side.SERVER, max_size=5).limits is not one.limits


def test_an_idle_reader_holds_no_buffer() -> None:
    _, server = open_pair()
    wire = client_frame(OP_TEXT, b"x" * 300)
    server.receive_data(wire[:100])  # incomplete: held
    assert server.reader.buffered == 100
    server.receive_data(wire[100:])
    assert server.events_received() == ["x" * 300]
    assert server.reader.buffered == 0


def test_the_frame_writer_holds_back_only_the_latest_pong() -> None:
    """Section 5.5.3: while deferred, the writer keeps the latest ping's payload only."""
    writer = FrameWriter(False, [])
    writer.defer_pongs(True)
    writer.pong(b"1")
    writer.pong(b"2")
    assert writer.outgoing == []
    assert writer.defer_pongs(False) == b"2"  # the caller writes it, if it still may
    assert writer.defer_pongs(False) is None  # handed over once
    writer.pong(b"3")
    assert b"".join(writer.outgoing) == b"\x8a\x013"  # not deferred: written at once


def test_the_frame_writer_cuts_a_close_reason_only_when_asked() -> None:
    writer = FrameWriter(False, [])
    reason = "é" * 70  # 140 bytes: over a control frame's 125 (section 5.5)
    with pytest.raises(LocalProtocolError):
        writer.close(1000, reason)
    assert writer.outgoing == []
    sent = writer.close(1000, reason, cut=True)
    assert sent == "é" * 61  # 122 bytes: a character is not split
    assert b"".join(writer.outgoing) == b"\x88\x7c\x03\xe8" + sent.encode()
