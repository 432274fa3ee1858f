"""Segment criteria (SPEC §8): validation in one place, with errors that name
the offending path (`criteria.all[2].op`), as the admin, `load_segments` and
the services report them."""

from __future__ import annotations

import pytest

from insights.criteria import MAX_CONDITIONS, MAX_DEPTH, SegmentError, criteria_validate
from tests.factories.entitlements import FeatureFactory, MeteredFeatureFactory, TierFactory


def errors_of(criteria, **kwargs) -> dict[str, list[str]]:
    with pytest.raises(SegmentError) as caught:
        criteria_validate(criteria, **kwargs)
    assert caught.value.http_status == 400
    return caught.value.details["fields"]


def cond(field, op, value=...):
    condition = {"field": field, "op": op}
    if value is not ...:
        condition["value"] = value
    return condition


def test_a_valid_document_is_cleaned():
    cleaned = criteria_validate(
        {"all": [
            cond("country", "in", ["de", " FR "]),
            cond("currency", "eq", "EUR"),
            {"any": [cond("metadata.plan", "eq", "pro"), cond("usage.ai_credit", "gte", 100)]},
            cond("lastActivityAt", "lt", "-30d"),
            cond("tier", "exists"),
        ]}
    )
    assert cleaned == {"all": [
        {"field": "country", "op": "in", "value": ["DE", "FR"]},
        {"field": "currency", "op": "eq", "value": "eur"},
        {"any": [{"field": "metadata.plan", "op": "eq", "value": "pro"},
                 {"field": "usage.ai_credit", "op": "gte", "value": 100}]},
        {"field": "lastActivityAt", "op": "lt", "value": "-30d"},
        {"field": "tier", "op": "exists", "value": True},
    ]}


@pytest.mark.parametrize(
    "criteria, path, fragment",
    [
        ([], "criteria", 'one key, "all" or "any"'),
        ({"all": [], "any": []}, "criteria", 'one key, "all" or "any"'),
        ({"every": []}, "criteria", 'one key, "all" or "any"'),
        ({"all": {}}, "criteria.all", "must be a list"),
        ({"any": []}, "criteria.any", "at least one condition"),
        ({"all": [cond("plan", "eq", "x")]}, "criteria.all[0].field", 'unknown field "plan"'),
        ({"all": [cond("metadata.", "eq", "x")]}, "criteria.all[0].field", "unknown field"),
        ({"all": [cond("usage.bad code", "gt", 1)]}, "criteria.all[0].field", "unknown field"),
        ({"all": [cond("mrr", "gt", 1), cond("mrr", "gt", 1), cond("mrr", "like", 1)]}, "criteria.all[2].op", 'unknown operator "like"'),
        ({"all": [{"field": "mrr", "value": 1}]}, "criteria.all[0].op", "is required"),
        ({"all": [cond("country", "gt", "DE")]}, "criteria.all[0].op", '"gt" does not apply to country'),
        ({"all": [cond("status", "exists")]}, "criteria.all[0].op", '"exists" does not apply to status'),
        ({"all": [cond("createdAt", "eq", "2026-01-01")]}, "criteria.all[0].op", '"eq" does not apply to createdAt'),
        ({"all": [cond("mrr", "gt", "100")]}, "criteria.all[0].value", "whole number"),
        ({"all": [cond("mrr", "gt", 1.5)]}, "criteria.all[0].value", "whole number"),
        ({"all": [cond("mrr", "gt", True)]}, "criteria.all[0].value", "whole number"),
        ({"all": [cond("mrr", "gt")]}, "criteria.all[0].value", "is required"),
        ({"all": [cond("mrr", "in", [])]}, "criteria.all[0].value", "non-empty list"),
        ({"any": [cond("country", "in", ["DE", "XX"])]}, "criteria.any[0].value[1]", "ISO 3166"),
        ({"all": [cond("currency", "eq", "euro")]}, "criteria.all[0].value", "ISO 4217"),
        ({"all": [cond("size", "eq", "huge")]}, "criteria.all[0].value", "startup"),
        ({"all": [cond("status", "eq", "happy")]}, "criteria.all[0].value", "prospect"),
        ({"all": [cond("riskLevel", "in", ["low", "extreme"])]}, "criteria.all[0].value[1]", "critical"),
        ({"all": [cond("timezone", "eq", "Mars/Olympus")]}, "criteria.all[0].value", "IANA"),
        ({"all": [cond("industry", "eq", "  ")]}, "criteria.all[0].value", "non-empty string"),
        ({"all": [cond("industry", "exists", "yes")]}, "criteria.all[0].value", "true or false"),
        ({"all": [cond("lastActivityAt", "gt", "yesterday")]}, "criteria.all[0].value", "ISO 8601"),
        ({"all": [cond("metadata.seats", "gt", "ten")]}, "criteria.all[0].value", "must be a number"),
        ({"all": [cond("metadata.tags", "contains", 3)]}, "criteria.all[0].value", "must be a string"),
        ({"all": [cond("metadata.plan", "eq", {"a": 1})]}, "criteria.all[0].value", "a string, a number"),
        ({"all": [{**cond("mrr", "gt", 1), "note": "x"}]}, "criteria.all[0].note", "unknown field"),
        ({"all": [cond("metadata.ratio", "eq", float("nan"))]}, "criteria.all[0].value", "finite"),
        ({"all": [cond("metadata.plan", "eq", "a\x00b")]}, "criteria.all[0].value", "NUL"),
        ({"all": [cond("industry", "eq", "a\x00b")]}, "criteria.all[0].value", "NUL"),
        ({"all": ["mrr > 1"]}, "criteria.all[0]", "must be a condition"),
    ],
)
def test_invalid_criteria_name_the_offending_path(criteria, path, fragment):
    fields = errors_of(criteria)
    assert path in fields, fields
    assert any(fragment in message for message in fields[path]), fields[path]


def test_every_problem_is_reported_at_once():
    fields = errors_of({"all": [cond("plan", "eq", 1), {"any": [cond("mrr", "gt", "x")]}]})
    assert set(fields) == {"criteria.all[0].field", "criteria.all[1].any[0].value"}


def test_nesting_depth_is_limited():
    criteria = cond("mrr", "gt", 0)
    for _ in range(MAX_DEPTH):
        criteria = {"all": [criteria]}
    criteria_validate(criteria)  # exactly MAX_DEPTH levels
    fields = errors_of({"any": [criteria]})
    path = "criteria.any[0]" + ".all[0]" * (MAX_DEPTH - 1)
    assert "nested more than" in fields[path][0]


def test_the_number_of_conditions_is_limited():
    fields = errors_of({"all": [{"any": [cond("mrr", "gt", n) for n in range(30)]} for _ in range(2)]})
    assert any(f"at most {MAX_CONDITIONS} conditions" in message for message in fields["criteria"])


@pytest.mark.django_db
def test_tiers_and_features_are_checked_against_the_product(product, other_product):
    TierFactory(product=product, code="pro")
    TierFactory(product=other_product, code="enterprise")
    MeteredFeatureFactory(product=product, code="ai_credit")
    FeatureFactory(product=product, code="sso")
    MeteredFeatureFactory(product=other_product, code="storage")
    fields = errors_of(
        {"all": [
            cond("tier", "in", ["pro", "enterprise"]),
            cond("usage.ai_credit", "gt", 1),
            cond("usage.storage", "gt", 1),
            cond("usage.sso", "gt", 1),
        ]},
        product_id=product.pk,
    )
    assert fields == {
        "criteria.all[0].value[1]": ['unknown tier "enterprise" in this product'],
        "criteria.all[2].field": ['unknown feature "storage" in this product'],
        "criteria.all[3].field": ['"sso" is not a metered feature (only metered features have usage)'],
    }
