"""How apps further down the dependency chain (entitlements, metering,
billing) put their inlines, actions and panels on the Company admin page
without `companies` importing them: they register here from their own
admin.py, and CompanyAdmin reads these lists."""

from __future__ import annotations

COMPANY_INLINES: list = []
COMPANY_ACTIONS: list = []
# SimpleListFilter classes for the Company changelist (tier, subscription status).
COMPANY_LIST_FILTERS: list = []
# Callables (request, company) -> str of safe HTML, shown on the change page
# (e.g. the usage chart). Each is rendered in order under the form.
COMPANY_PANELS: list = []
# Extra columns of the Company changelist (ModelAdmin list_display callables,
# e.g. the tier), inserted after the status column.
COMPANY_LIST_COLUMNS: list = []
# Callables (request, company) -> list of {"label", "value"} for the header of
# the customer overview (tier, subscription and period end, wallet balance).
COMPANY_SUMMARY: list = []
# Callables (request, company) -> {"title", "url"} or None: buttons on the
# customer overview for pages that are not company actions (Override access…).
COMPANY_PAGE_LINKS: list = []


def register_company_inline(inline_class) -> None:
    if inline_class not in COMPANY_INLINES:
        COMPANY_INLINES.append(inline_class)


def register_company_action(action, *, permission: str | None = None) -> None:
    """`permission` ("app.codename"): the company page shows the action's
    button only to users who have it (the action still checks it itself)."""
    if permission:
        action.required_permission = permission
    if action not in COMPANY_ACTIONS:
        COMPANY_ACTIONS.append(action)


def register_company_panel(panel, *, top: bool = False, first: bool = False) -> None:
    """`top`: shown above the form, on the first screen of the overview
    (the per-feature access rows); else under the form. `first`: before the
    panels registered earlier (a merged company's tombstone banner)."""
    if top:
        panel.top = True
    if panel not in COMPANY_PANELS:
        COMPANY_PANELS.insert(0, panel) if first else COMPANY_PANELS.append(panel)


def register_company_list_column(column) -> None:
    if column not in COMPANY_LIST_COLUMNS:
        COMPANY_LIST_COLUMNS.append(column)


def register_company_summary(fact) -> None:
    if fact not in COMPANY_SUMMARY:
        COMPANY_SUMMARY.append(fact)


def register_company_page_link(link) -> None:
    if link not in COMPANY_PAGE_LINKS:
        COMPANY_PAGE_LINKS.append(link)


def register_company_list_filter(list_filter) -> None:
    if list_filter not in COMPANY_LIST_FILTERS:
        COMPANY_LIST_FILTERS.append(list_filter)


class ReadOnlyAdminMixin:
    """For audit rows, ledgers and mirrors of Stripe: written by services only,
    so staff look but never add, edit or delete."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
