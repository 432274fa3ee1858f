"""Admin pages for rows created with a secret that is shown once (API keys,
service credentials): the service makes the row and the secret, and the
page after the save shows the secret — never a message, which would sit in
the session or a cookie — with `Cache-Control: no-store`."""

from __future__ import annotations

from django.template.response import TemplateResponse


class SecretShownOnceMixin:
    secret_template: str = ""
    secret_title: str = ""
    # Names of the row and the secret in the template's context.
    secret_context_names: tuple[str, str] = ("object", "secret")

    def create_with_secret(self, request, obj):
        """(the row the service created, the secret)."""
        raise NotImplementedError

    def save_change(self, request, obj) -> None:
        """What an edit of an existing row saves (nothing by default)."""

    def save_model(self, request, obj, form, change):
        if change:
            self.save_change(request, obj)
            return
        created, secret = self.create_with_secret(request, obj)
        # The admin goes on with `obj` (log entry, redirect): make it the row
        # the service created.
        obj.__dict__.update({k: v for k, v in created.__dict__.items() if k != "_state"})
        obj._state.adding = False
        obj._state.db = created._state.db
        request._new_secret = secret

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, "_new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        row_name, secret_name = self.secret_context_names
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": self.secret_title,
            row_name: obj,
            secret_name: secret,
        }
        response = TemplateResponse(request, self.secret_template, context)
        response["Cache-Control"] = "no-store"
        return response
