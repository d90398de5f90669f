"""The implementations of the hub's :class:`~hubbub.hub.core.broker.Broker` interface.

* :mod:`~hubbub.hub.brokers.memory`: the in-process broker (one process, the default);
* :mod:`~hubbub.hub.brokers.redis_broker`: the Redis broker for several nodes (the
  ``redis`` extra), which owns a :mod:`~hubbub.hub.brokers.redis_subscriber` for live
  fan-out and runs the Lua scripts of :mod:`~hubbub.hub.brokers.redis_scripts`.
"""
