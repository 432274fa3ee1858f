"""`alertThresholds` in the catalog (SPEC §4, §11): default [80, 100], loaded,
dumped only when not the default, validated with the offending path."""

from __future__ import annotations

import copy
import json

import pytest

from entitlements.catalog import CatalogError, catalog_dump, catalog_load
from entitlements.models import Feature
from tests.entitlements.conftest import DEMO_CATALOG as DEMO_CATALOG_PATH

DEMO_CATALOG = json.loads(DEMO_CATALOG_PATH.read_text())

pytestmark = pytest.mark.django_db


def _catalog(**ai_credit):
    data = copy.deepcopy(DEMO_CATALOG)
    for feature in data["features"]:
        if feature["code"] == "ai_credit":
            feature.update(ai_credit)
    return data


def test_default_thresholds_and_round_trip():
    catalog_load(data=_catalog())
    feature = Feature.objects.get(code="ai_credit")
    assert feature.alert_thresholds == [80, 100]
    dumped = catalog_dump(product=feature.product)
    assert "alertThresholds" not in next(f for f in dumped["features"] if f["code"] == "ai_credit")


def test_custom_thresholds_load_sorted_and_dump_back():
    catalog_load(data=_catalog(alertThresholds=[100, 50, 90]))
    feature = Feature.objects.get(code="ai_credit")
    assert feature.alert_thresholds == [50, 90, 100]
    dumped = catalog_dump(product=feature.product)
    assert next(f for f in dumped["features"] if f["code"] == "ai_credit")["alertThresholds"] == [50, 90, 100]
    assert not catalog_load(data=dumped).changed


@pytest.mark.parametrize("value", [[0], [101], [80, 80], "80", [80.5], [True], list(range(1, 13))])
def test_bad_thresholds_name_the_path(value):
    with pytest.raises(CatalogError) as error:
        catalog_load(data=_catalog(alertThresholds=value))
    assert "features[" in str(error.value) and ".alertThresholds" in str(error.value)
    assert not Feature.objects.exists()


def test_only_metered_features_have_thresholds():
    data = copy.deepcopy(DEMO_CATALOG)
    boolean = next(f for f in data["features"] if f["kind"] == "boolean")
    boolean["alertThresholds"] = [50]
    with pytest.raises(CatalogError, match="only metered"):
        catalog_load(data=data)
