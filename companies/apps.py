from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CompaniesConfig(AppConfig):
    name = "companies"
    verbose_name = "Customers"

    def ready(self) -> None:
        from .roles import sync_roles_after_migrate

        # Keeps the Support / Billing admin groups in step with models that
        # later migrations add (see companies.roles).
        post_migrate.connect(sync_roles_after_migrate, sender=self, dispatch_uid="companies.sync_roles")
