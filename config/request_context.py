"""The request being served: its id (logs, error bodies) and whether it only
reads (a merged company's tombstone answers reads with the kept company and
refuses writes: companies.selectors.company_tombstone_resolve)."""

from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

# True while serving a GET/HEAD/OPTIONS request; False outside requests
# (jobs, shell, admin services), where a tombstone is treated as a write.
request_is_read_var: ContextVar[bool] = ContextVar("request_is_read", default=False)
