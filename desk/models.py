"""The desk's own records: one row per company merge (SPEC §3), the
timeline's entry for it (who, why, when, what moved)."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from companies.models import Company, Product


class CompanyMerge(models.Model):
    """A duplicate (`source`, now a tombstone) merged into the company that
    stays (`target`). Written once, in the merge's transaction, by
    `desk.services.company_merge`; never changed. `moved` holds the SPEC §3
    answer counts (contacts, links, overrides, meters, events, wallets,
    subscriptions) plus each app's detail; `product_ids` are the products the
    duplicate was linked to (a tombstone's id keeps answering for them)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # One merge per duplicate: a tombstone is never merged again.
    source = models.OneToOneField(Company, on_delete=models.PROTECT, related_name="merge_record")
    target = models.ForeignKey(Company, on_delete=models.PROTECT, related_name="merges_received")
    source_name = models.CharField(max_length=200, help_text="The duplicate's name when it was merged.")
    reason = models.TextField()
    actor = models.CharField(max_length=200, blank=True, default="", help_text='e.g. "user:bea" or "api:<product>".')
    # The product whose key asked for it (API); None from the admin.
    requested_by_product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    product_ids = models.JSONField(default=list, blank=True)
    moved = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "company merge"
        permissions = [("merge_companies", "Can merge companies")]
        indexes = [models.Index(fields=["target", "-created_at"], name="company_merge_target_idx")]

    def __str__(self) -> str:
        return f"{self.source_name} → {self.target.name}"
