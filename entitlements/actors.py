"""Kept for imports written before the move: `Actor` lives in `companies.actors`
(the leftmost app, so every app — credits included — can label its audit rows the
same way)."""

from companies.actors import Actor, ActorKind

__all__ = ["Actor", "ActorKind"]
