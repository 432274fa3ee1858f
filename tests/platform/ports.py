"""A local TCP port nothing listens on (until someone binds it): for servers
to start on, and for "Redis is down" (a connection there is refused)."""

import socket


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
