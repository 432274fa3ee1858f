from django.apps import AppConfig


class EntitlementsConfig(AppConfig):
    name = "entitlements"
    verbose_name = "Features and tiers"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the receivers)
