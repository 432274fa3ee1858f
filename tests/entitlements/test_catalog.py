"""manage.py load_catalog / dump_catalog (SPEC §4 catalog as code)."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from companies.models import Product
from entitlements.models import Feature, Tier, TierFeature
from tests.entitlements.conftest import DEMO_CATALOG

pytestmark = pytest.mark.django_db

SPEC_EXAMPLE = {
    "product": {"code": "chat", "name": "Chat App"},
    "features": [
        {"code": "ai_credit", "name": "AI credits", "kind": "metered", "unit": "credit", "resetPeriod": "monthly", "stripeMeterEventName": "ai_credit"},
        {"code": "team_seats", "name": "Team seats", "kind": "config", "defaultConfig": {"maxSeats": 3}},
        {"code": "sso", "name": "Single sign-on", "kind": "boolean"},
    ],
    "tiers": [
        {"code": "free", "name": "Free", "displayOrder": 0, "default": True, "isActive": True,
         "features": {"ai_credit": {"includedQuantity": 100, "quantityLimit": 100}, "team_seats": {"config": {"maxSeats": 3}}}},
        {"code": "pro", "name": "Pro", "displayOrder": 1,
         "baseFee": {"stripePriceId": "price_pro_base", "unitAmount": 4900, "currency": "eur", "interval": "month"},
         "features": {"ai_credit": {"includedQuantity": 1000, "quantityLimit": None, "stripePriceId": "price_ai"},
                      "team_seats": {"config": {"maxSeats": 50}}, "sso": {}}},
    ],
}


def write(tmp_path, data, name="catalog.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def load(path) -> str:
    out = io.StringIO()
    call_command("load_catalog", path, stdout=out)
    return out.getvalue()


def dump(code="chat") -> dict:
    out = io.StringIO()
    call_command("dump_catalog", code, stdout=out)
    return json.loads(out.getvalue())


def state():
    return (
        list(Product.objects.order_by("code").values()),
        list(Feature.objects.order_by("code").values()),
        list(Tier.objects.order_by("code").values()),
        list(TierFeature.objects.order_by("tier__code", "feature__code").values()),
    )


def test_load_the_spec_example(tmp_path):
    load(write(tmp_path, SPEC_EXAMPLE))
    pro = Tier.objects.get(code="pro")
    assert pro.base_fee_unit_amount == 4900 and pro.base_fee_stripe_price_id == "price_pro_base"
    sso = TierFeature.objects.get(tier=pro, feature__code="sso")
    assert (sso.is_enabled, sso.included_quantity, sso.quantity_limit, sso.config) == (True, 0, None, {})
    assert Tier.objects.get(code="free").is_default
    assert Feature.objects.get(code="team_seats").default_config == {"maxSeats": 3}


def test_load_twice_changes_nothing(tmp_path):
    path = write(tmp_path, SPEC_EXAMPLE)
    load(path)
    before = state()
    output = load(path)
    assert "0 created, 0 updated" in output
    assert state() == before  # not even updated_at moved


def test_dump_then_load_is_a_no_op(tmp_path):
    load(str(DEMO_CATALOG))
    dumped = dump()
    before = state()
    assert "0 created, 0 updated" in load(write(tmp_path, dumped))
    assert state() == before
    assert dump() == dumped


def test_dump_matches_the_spec_format(tmp_path):
    load(write(tmp_path, SPEC_EXAMPLE))
    dumped = dump()
    assert dumped["product"] == {"code": "chat", "name": "Chat App"}
    pro = next(t for t in dumped["tiers"] if t["code"] == "pro")
    assert pro["features"]["sso"] == {}
    assert pro["baseFee"]["unitAmount"] == 4900
    assert next(f for f in dumped["features"] if f["code"] == "sso") == {"code": "sso", "name": "Single sign-on", "kind": "boolean"}


def test_load_updates_and_removes_tier_features(tmp_path):
    load(write(tmp_path, SPEC_EXAMPLE))
    changed = json.loads(json.dumps(SPEC_EXAMPLE))
    changed["tiers"][1]["features"].pop("sso")
    changed["tiers"][1]["features"]["team_seats"]["config"] = {"maxSeats": 60}
    changed["tiers"][1]["default"] = True
    changed["tiers"][0]["default"] = False
    output = load(write(tmp_path, changed))
    assert "tier pro" in output
    pro = Tier.objects.get(code="pro")
    assert not TierFeature.objects.filter(tier=pro, feature__code="sso").exists()
    assert TierFeature.objects.get(tier=pro, feature__code="team_seats").config == {"maxSeats": 60}
    assert pro.is_default and not Tier.objects.get(code="free").is_default


def test_features_missing_from_the_file_are_left_alone(tmp_path):
    load(write(tmp_path, SPEC_EXAMPLE))
    partial = {"product": SPEC_EXAMPLE["product"], "features": SPEC_EXAMPLE["features"][:2], "tiers": []}
    output = load(write(tmp_path, partial))
    assert Feature.objects.filter(code="sso").exists()
    assert "left alone" in output and "feature sso" in output


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["tiers"][1]["features"].update({"sso_x": {}}), "tiers[1].features.sso_x: unknown feature"),
        (lambda d: d["features"][0].update({"kind": "counter"}), "features[0].kind: must be one of"),
        (lambda d: d["tiers"][0]["features"]["ai_credit"].update({"quantityLimit": -1}), "tiers[0].features.ai_credit.quantityLimit"),
        (lambda d: d["tiers"][1].update({"default": True}), "tiers[1].default: only one tier may be the default"),
        (lambda d: d["features"].append(dict(d["features"][0])), "features[3].code: duplicate feature code"),
        (lambda d: d["features"][2].update({"unit": "x"}), "features[2].unit: only metered features"),
        (lambda d: d["tiers"][1]["baseFee"].update({"interval": "fortnight"}), "tiers[1].baseFee.interval"),
        (lambda d: d["tiers"][1]["baseFee"].update({"unitAmount": "49"}), "tiers[1].baseFee.unitAmount"),
        (lambda d: d["features"][1].update({"defaultConfig": [1]}), "features[1].defaultConfig: must be an object"),
        (lambda d: d["product"].pop("code"), "product.code: is required"),
        (lambda d: d["tiers"][0].update({"colour": "red"}), "tiers[0].colour: unknown field"),
        (lambda d: d["features"][0].update({"code": "AI credit!"}), "features[0].code"),
    ],
)
def test_bad_files_name_the_path_and_change_nothing(tmp_path, mutate, message):
    load(write(tmp_path, SPEC_EXAMPLE))
    before = state()
    broken = json.loads(json.dumps(SPEC_EXAMPLE))
    broken["features"][0]["name"] = "Renamed in the broken file"
    mutate(broken)
    with pytest.raises(CommandError) as error:
        load(write(tmp_path, broken, "broken.json"))
    assert message in str(error.value)
    assert state() == before


def test_invalid_json_and_missing_file(tmp_path):
    with pytest.raises(CommandError, match=r"invalid JSON at line 1"):
        load(write(tmp_path, '{"product": '))
    with pytest.raises(CommandError, match="cannot read"):
        load(str(tmp_path / "missing.json"))
    with pytest.raises(CommandError, match="must be an object"):
        load(write(tmp_path, "[]"))
    with pytest.raises(CommandError, match="nested too deep"):
        load(write(tmp_path, "[" * 100_000 + "]" * 100_000))
    assert not Product.objects.exists()


def test_dump_unknown_product():
    with pytest.raises(CommandError, match="unknown product"):
        dump("nope")


def test_command_exits_non_zero_without_traceback(tmp_path):
    import subprocess
    import sys

    from django.conf import settings

    path = write(tmp_path, {"product": {"code": "chat", "name": "Chat"}, "tiers": [{"code": "x", "name": "X", "features": {"sso": {}}}]})
    # A throwaway SQLite database, whatever the suite runs on.
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cmd.sqlite3'}",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, check=True, cwd=settings.BASE_DIR)
    result = subprocess.run(
        [sys.executable, "manage.py", "load_catalog", path], env=env, capture_output=True, text=True, cwd=settings.BASE_DIR
    )
    assert result.returncode != 0
    assert "tiers[0].features.sso: unknown feature" in result.stderr
    assert "Traceback" not in result.stderr
