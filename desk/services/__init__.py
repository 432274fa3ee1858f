"""The desk's operations that span every app (SPEC §1 (c)), each app doing
its own part:

- `suspension`: account_suspend, account_reactivate
- `merge`: company_merge, company_merge_preview
"""

from .merge import MergeResult, company_merge, company_merge_preview
from .suspension import MAX_REASON_LENGTH, StatusChange, account_reactivate, account_suspend

__all__ = [
    "MAX_REASON_LENGTH",
    "MergeResult",
    "StatusChange",
    "account_reactivate",
    "account_suspend",
    "company_merge",
    "company_merge_preview",
]
