"""The hub's I/O-free core: everything a node decides, nothing it waits for.

* :mod:`~hubbub.hub.core.node`: a node: sessions, subscriptions, routing, limits;
* :mod:`~hubbub.hub.core.operations`: the commands that only check rights and ask the broker;
* :mod:`~hubbub.hub.core.session`: one client connection's state and its outgoing queue;
* :mod:`~hubbub.hub.core.permissions`: who may subscribe, publish and send where;
* :mod:`~hubbub.hub.core.config`: limits and namespace rules;
* :mod:`~hubbub.hub.core.protocol`: the ``hubbub.json.v1`` wire protocol codec;
* :mod:`~hubbub.hub.core.binary`: ``hubbub.msgpack.v1``, the same messages in MessagePack;
* :mod:`~hubbub.hub.core.streams`: bounded ordered streams with offsets and epochs;
* :mod:`~hubbub.hub.core.broker`: the :class:`~hubbub.hub.core.broker.Broker` interface
  the node is handed (the implementations live in :mod:`hubbub.hub.brokers`).

Nothing here imports asyncio, socket, threading or time (tests/hub/test_core_no_io.py):
the clock, the broker and the connections are injected by the server that runs the node
(:mod:`hubbub.hub.server`, or the ASGI app).
"""
