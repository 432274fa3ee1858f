"""The request id of the request being served, for logs and error bodies."""

from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
