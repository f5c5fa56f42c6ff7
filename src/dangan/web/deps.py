"""Request dependencies shared by the API and the pages: the archive, and who is acting.

`current_actor` is the one place that decides who the request acts as. Until the identity issue brings
login, everyone is the bootstrap administrator; that swap happens here and nowhere else.
"""

from __future__ import annotations

from fastapi import Request

from dangan.services.context import Actor, Dangan


def get_dangan(request: Request) -> Dangan:
    return request.app.state.dangan


def client_addr(request: Request) -> str:
    return request.client.host if request.client else ""


def current_actor(request: Request) -> Actor:
    return Actor.admin(client_addr=client_addr(request))
