"""Product settings owned by the companies app: the customer pool (SPEC §2)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils.text import slugify

from config.errors import BadRequest, Conflict

from ..models import Company, Product, ProductLink

CUSTOMER_POOL_MAX_LENGTH = 64


def customer_pool_clean(value: str | None, *, field_name: str = "customerPool") -> str:
    """A pool name is a slug (`acme-customers`); empty means "the product's own"."""
    value = (value or "").strip()
    if value and (slugify(value) != value or len(value) > CUSTOMER_POOL_MAX_LENGTH):
        raise BadRequest.for_field(
            field_name, f"Use lower-case letters, digits and dashes (at most {CUSTOMER_POOL_MAX_LENGTH})."
        )
    return value


def _pool_conflict(message: str) -> Conflict:
    return Conflict(message, details={"fields": {"customerPool": [message]}})


def _companies_moving(product: Product):
    """The companies that move when the product changes pool: those linked to it."""
    return Company.objects.filter(Exists(ProductLink.objects.filter(company=OuterRef("pk"), product_id=product.pk)))


def product_customer_pool_check(*, product: Product, customer_pool: str) -> str:
    """The pool `product` may be given (its code when empty). A product's
    linked companies move with it, so a change is refused while one of them
    is also linked to another product (they share it: moving it would take it
    from them) or when a moving company's shortId is taken in the new pool."""
    customer_pool = customer_pool_clean(customer_pool) or product.code
    if product._state.adding or product.pk is None:
        return customer_pool
    current = Product.objects.filter(pk=product.pk).values_list("customer_pool", flat=True).first()
    if current is None or current == customer_pool:
        return customer_pool
    moving = _companies_moving(product)
    shared = moving.filter(Exists(ProductLink.objects.filter(company=OuterRef("pk")).exclude(product_id=product.pk)))
    if shared.exists():
        raise _pool_conflict(
            "Some of this product's companies are also linked to other products of its pool; "
            "the pool cannot change while they share them."
        )
    taken = Company.objects.filter(customer_pool=customer_pool, short_id__in=moving.values("short_id"))
    if taken.exists():
        raise _pool_conflict(
            f"shortIds of this product's companies are taken in pool '{customer_pool}' "
            f"(e.g. {taken.values_list('short_id', flat=True).first()}); merge or rename them first."
        )
    return customer_pool


def product_customer_pool_set(*, product: Product, customer_pool: str) -> Product:
    """Put the product in `customer_pool`, its linked companies with it (see
    product_customer_pool_check for when that is refused). Idempotent."""
    with transaction.atomic():
        customer_pool = product_customer_pool_check(product=product, customer_pool=customer_pool)
        if not product._state.adding and product.pk is not None:
            _companies_moving(product).exclude(customer_pool=customer_pool).update(customer_pool=customer_pool)
        product.customer_pool = customer_pool
        if product._state.adding:
            product.save()
        else:
            product.save(update_fields=["customer_pool"])
    return product
