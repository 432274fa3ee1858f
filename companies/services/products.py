"""Product settings owned by the companies app: the customer pool (SPEC §2)."""

from __future__ import annotations

from django.utils.text import slugify

from config.errors import BadRequest, Conflict

from ..models import Product, ProductLink

CUSTOMER_POOL_MAX_LENGTH = 64


def customer_pool_clean(value: str | None, *, field_name: str = "customerPool") -> str:
    """A pool name is a slug (`acme-customers`); empty means "the product's own"."""
    value = (value or "").strip()
    if value and (slugify(value) != value or len(value) > CUSTOMER_POOL_MAX_LENGTH):
        raise BadRequest.for_field(
            field_name, f"Use lower-case letters, digits and dashes (at most {CUSTOMER_POOL_MAX_LENGTH})."
        )
    return value


def product_customer_pool_check(*, product: Product, customer_pool: str) -> str:
    """The pool `product` may be given (its code when empty). A product that
    already has linked companies keeps its pool: they live in it, and moving
    customers between pools is a merge, not a setting."""
    customer_pool = customer_pool_clean(customer_pool) or product.code
    if (
        product.pk is not None
        and not product._state.adding
        and customer_pool != Product.objects.values_list("customer_pool", flat=True).get(pk=product.pk)
        and ProductLink.objects.filter(product_id=product.pk).exists()
    ):
        raise Conflict(
            "The customer pool of a product that has linked companies cannot change.",
            details={"fields": {"customerPool": ["The product already has linked companies."]}},
        )
    return customer_pool


def product_customer_pool_set(*, product: Product, customer_pool: str) -> Product:
    """Set the product's customer pool (see product_customer_pool_check)."""
    product.customer_pool = product_customer_pool_check(product=product, customer_pool=customer_pool)
    product.save(update_fields=["customer_pool"])
    return product
