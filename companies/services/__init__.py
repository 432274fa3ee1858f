"""Writes of the companies app, by concern (like billing.services):

- `api_keys`: api_key_create, api_key_revoke
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

from .api_keys import api_key_create, api_key_revoke
from .cleaning import UNSET
from .companies import company_create, company_create_unlinked, company_insert, company_update, short_id_base
from .contacts import MAX_BULK_CONTACTS, ContactsBulkResult, contact_save, contact_upsert, contacts_bulk_upsert
from .service_credentials import service_credential_create, service_credential_revoke
from .links import LinksResetResult, product_link_create, product_links_reset
from .smart_link import SmartLinkResult, SmartLinkStatus, company_smart_link

__all__ = [
    "MAX_BULK_CONTACTS",
    "UNSET",
    "ContactsBulkResult",
    "LinksResetResult",
    "SmartLinkResult",
    "SmartLinkStatus",
    "api_key_create",
    "api_key_revoke",
    "company_create",
    "company_create_unlinked",
    "company_insert",
    "company_smart_link",
    "company_update",
    "contact_save",
    "contact_upsert",
    "contacts_bulk_upsert",
    "product_link_create",
    "product_links_reset",
    "service_credential_create",
    "service_credential_revoke",
    "short_id_base",
]
