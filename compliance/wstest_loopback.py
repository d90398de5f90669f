"""Run ``wstest`` with every listening socket bound to the loopback interface.

This file runs under the Python 2.7 of the wstest virtualenv (see install_wstest.sh), so it
sticks to syntax that Python 2.7 and 3 share.

wstest's server modes (``fuzzingserver``, ``echoserver``) listen on all interfaces and have
no option to change that; our machines must not expose test servers beyond loopback. wstest
installs its Twisted reactor when its module is imported, so we import it first, then make
that one reactor's ``listenTCP`` default to 127.0.0.1 (``WSTEST_BIND`` overrides it). Both
listening paths in wstest (autobahn's ``listenWS`` and the report web server) end there.

Usage: python wstest_loopback.py <wstest arguments>

No Python 3 module in this folder may share a name with a Python 2 module wstest imports (the
script's folder comes first on sys.path): that is why the runner is run_autobahn.py.
"""

import os
import sys

from autobahntestsuite import wstest  # must come first: it picks and installs the reactor
from twisted.internet import reactor

BIND_ADDRESS = os.environ.get("WSTEST_BIND", "127.0.0.1")
_listen_tcp = reactor.listenTCP


def _listen_tcp_on_loopback(port, factory, backlog=50, interface=""):
    return _listen_tcp(port, factory, backlog, interface or BIND_ADDRESS)


reactor.listenTCP = _listen_tcp_on_loopback

if __name__ == "__main__":
    sys.argv[0] = "wstest"
    wstest.run()
