from django.apps import AppConfig


class MeteringConfig(AppConfig):
    name = "metering"
    verbose_name = "Usage"

    def ready(self) -> None:
        # Feature checks (entitlements) read current-period usage through this
        # seam, without entitlements importing metering.
        from entitlements.usage import register_usage_reader

        from .selectors import current_usage_read

        register_usage_reader(current_usage_read)
