"""Receivers that keep derived data in step with the models, whatever path
wrote them (services, admin, catalog loader, another app, the shell):
the feature-check cache, and the actor column of the access history."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver
from simple_history.signals import pre_create_historical_record

from companies.models import ProductLink

from . import cache as check_cache
from .models import Feature, FeatureAccess, Tier, TierFeature


@receiver(pre_create_historical_record, sender=FeatureAccess.history.model)
def fill_history_actor(sender, instance, history_instance, history_user=None, **kwargs):
    actor = getattr(instance, "_history_actor", "")
    if not actor and history_user is not None:
        actor = f"user:{history_user.get_username()}"
    history_instance.actor = actor or "system:unknown"


@receiver([post_save, post_delete], sender=Feature)
@receiver([post_save, post_delete], sender=Tier)
def forget_catalog(sender, instance, **kwargs):
    check_cache.invalidate_catalog(product_id=instance.product_id)


@receiver([post_save, post_delete], sender=TierFeature)
def forget_catalog_of_tier_feature(sender, instance, **kwargs):
    # Check results do not read tier features (access rows are copies made at
    # apply time), but GET /tiers answers do once they are cached anywhere.
    product_id = Tier.objects.filter(pk=instance.tier_id).values_list("product_id", flat=True).first()
    if product_id is not None:
        check_cache.invalidate_catalog(product_id=product_id)


@receiver([post_save, post_delete], sender=FeatureAccess)
def forget_access(sender, instance, **kwargs):
    if FeatureAccess.feature.is_cached(instance):
        feature = {"product_id": instance.feature.product_id, "code": instance.feature.code}
    else:
        feature = Feature.objects.filter(pk=instance.feature_id).values("product_id", "code").first()
    if feature is not None:
        check_cache.invalidate_access(
            product_id=feature["product_id"], company_id=instance.company_id, feature_codes=[feature["code"]]
        )


@receiver(pre_save, sender=ProductLink)
def forget_previous_link(sender, instance, raw=False, **kwargs):
    if raw or instance._state.adding:
        return
    previous = ProductLink.objects.filter(pk=instance.pk).values("product_id", "company_id", "external_org_id").first()
    if previous is not None:
        check_cache.invalidate_link(**previous)


@receiver([post_save, post_delete], sender=ProductLink)
def forget_link(sender, instance, **kwargs):
    check_cache.invalidate_link(
        product_id=instance.product_id, company_id=instance.company_id, external_org_id=instance.external_org_id
    )
