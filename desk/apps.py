from django.apps import AppConfig


class DeskConfig(AppConfig):
    """The support desk (SPEC §1): operations that span every app (suspend,
    reactivate, and later merge and the customer overview), each app doing
    its own part."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "desk"
    verbose_name = "Support desk"
