"""Connection URLs as they may be shown (never with a password), and addresses a server can listen on."""

from __future__ import annotations

import socket

import sqlalchemy.exc
from sqlalchemy.engine import make_url

from hpsearch.errors import HpsearchError


def mask(url: str) -> str:
    """The URL with its password replaced by ***, for anything printed, logged or stored."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return "<unparseable URL>"


def check_free(host: str, port: int) -> None:
    """A server about to start on ``host:port`` can bind there; else one line instead of its traceback."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
            probe.bind(address)
    except OSError as exc:
        raise HpsearchError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pass another --port, or a "
                            "--host address of this machine") from None
