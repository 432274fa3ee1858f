"""Who changed something: a staff user, a product's API key, or a system job.

Every audited write (feature access here; usage and credits in metering and
billing) takes an `Actor`, so the history can say who did it even when the
writer is not a Django user. `str(actor)` is the stable text stored in audit
rows: `user:alice`, `api_key:Chat backend (3f2c…)`, `system:billing.webhook`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ActorKind = Literal["user", "api_key", "system"]


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    id: str
    label: str
    # The Django user for `kind == "user"`, so history rows can point at it.
    user: Any = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        if self.kind == "api_key":
            return f"api_key:{self.label} ({self.id})"
        return f"{self.kind}:{self.label}"

    @classmethod
    def for_user(cls, user) -> Actor:
        return cls(kind="user", id=str(user.pk), label=user.get_username(), user=user)

    @classmethod
    def for_api_key(cls, *, key_id, name: str = "") -> Actor:
        return cls(kind="api_key", id=str(key_id), label=name or "API key")

    @classmethod
    def system(cls, job: str) -> Actor:
        """A scheduled job or internal process, e.g. `Actor.system("billing.webhook")`."""
        return cls(kind="system", id=job, label=job)

    @classmethod
    def from_request(cls, request) -> Actor:
        """The API key of a product API request (DRF `request.auth`), else the
        logged-in staff user, else an anonymous system actor."""
        from companies.api_keys import ApiPrincipal

        principal = getattr(request, "auth", None)
        if isinstance(principal, ApiPrincipal):
            # The name comes with the (cached) key lookup: no query per call.
            return cls.for_api_key(key_id=principal.key_id, name=principal.key_name)
        user = getattr(request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False):
            return cls.for_user(user)
        return cls.system("anonymous-request")
