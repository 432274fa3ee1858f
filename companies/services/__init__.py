"""Writes of the companies app, by concern (like billing.services):

- `api_keys`: api_key_create, api_key_revoke
- `products`: the customer pool setting
- `accounts`: account_ensure, account_update (a company's per-product state)
- `profile`: profile_clean (profile and billing fields), the derived account
  fields' hooks account_purchases_set (billing) and account_activity_touch (metering), accounts_health_set (insights)
- `service_credentials`: service_credential_create, service_credential_revoke
- `cleaning`: the input cleaners every write shares, UNSET
- `companies`: company_create, company_update, company_insert, shortIds
- `links`: product_link_create, product_links_reset
- `contacts`: contact_upsert, contact_save, contacts_bulk_upsert
- `smart_link`: company_smart_link

The public names are re-exported here, so `from companies.services import X`
keeps working. Errors are config.errors.* so the API renders them as the
SPEC §2 envelope; field names in BadRequest details are the API's camelCase
names."""

from .accounts import account_ensure, account_update
from .api_keys import api_key_create, api_key_revoke
from .cleaning import UNSET
from .companies import company_create, company_insert, company_update, short_id_base
from .contacts import (
    MAX_BULK_CONTACTS,
    ContactSetMember,
    ContactsBulkResult,
    contact_save,
    contact_upsert,
    contacts_bulk_upsert,
    contacts_set_errors,
)
from .links import LinksResetResult, link_insert, link_pool_check, product_link_create, product_links_reset
from .profile import (
    ACCOUNT_BILLING_FIELDS,
    COMPANY_PROFILE_FIELDS,
    PROFILE_FIELDS,
    account_activity_touch,
    account_purchases_set,
    accounts_health_set,
    profile_clean,
)
from .products import customer_pool_clean, product_customer_pool_check, product_customer_pool_set
from .service_credentials import service_credential_create, service_credential_revoke
from .smart_link import SmartLinkResult, SmartLinkStatus, company_smart_link

__all__ = [
    "ACCOUNT_BILLING_FIELDS",
    "COMPANY_PROFILE_FIELDS",
    "PROFILE_FIELDS",
    "account_activity_touch",
    "account_purchases_set",
    "accounts_health_set",
    "profile_clean",
    "MAX_BULK_CONTACTS",
    "UNSET",
    "ContactSetMember",
    "ContactsBulkResult",
    "LinksResetResult",
    "SmartLinkResult",
    "SmartLinkStatus",
    "account_ensure",
    "account_update",
    "api_key_create",
    "api_key_revoke",
    "company_create",
    "company_insert",
    "company_smart_link",
    "company_update",
    "contact_save",
    "contact_upsert",
    "contacts_bulk_upsert",
    "contacts_set_errors",
    "customer_pool_clean",
    "link_insert",
    "link_pool_check",
    "product_link_create",
    "product_customer_pool_check",
    "product_customer_pool_set",
    "product_links_reset",
    "service_credential_create",
    "service_credential_revoke",
    "short_id_base",
]

from .merge import (  # noqa: E402  (the merge's part, desk.services.company_merge)
    ContactsMerged,
    accounts_merge,
    accounts_merge_check,
    companies_lock_pair,
    company_tombstone,
    contacts_merge,
    links_merge,
)

__all__ += [
    "ContactsMerged",
    "accounts_merge",
    "accounts_merge_check",
    "companies_lock_pair",
    "company_tombstone",
    "contacts_merge",
    "links_merge",
]
