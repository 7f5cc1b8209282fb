"""An ordered table of (predicate, handler): the first match wins.

No scores and no magic: reading the table tells you which handler answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

C = TypeVar("C")
R = TypeVar("R")

Predicate = Callable[[C], bool]
Handler = Callable[[C], Awaitable[R]]


@dataclass(frozen=True)
class Route(Generic[C, R]):
    name: str
    predicate: Callable[[C], bool]
    handler: Callable[[C], Awaitable[R]]


class Router(Generic[C, R]):
    def __init__(self) -> None:
        self._routes: list[Route[C, R]] = []

    def add(self, name: str, predicate: Callable[[C], bool], handler: Callable[[C], Awaitable[R]]) -> None:
        if any(r.name == name for r in self._routes):
            raise ValueError(f"route {name!r} is already in the table")
        self._routes.append(Route(name, predicate, handler))

    def match(self, context: C) -> Route[C, R] | None:
        for route in self._routes:
            if route.predicate(context):
                return route
        return None

    @property
    def names(self) -> list[str]:
        return [r.name for r in self._routes]
