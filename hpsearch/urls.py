"""Connection URLs as they may be shown: never with a password."""

from __future__ import annotations

import sqlalchemy.exc
from sqlalchemy.engine import make_url


def mask(url: str) -> str:
    """The URL with its password replaced by ***, for anything printed, logged or stored."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return "<unparseable URL>"
