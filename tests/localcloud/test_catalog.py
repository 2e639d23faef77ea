"""The local cloud's catalogue: shape (against the Hetzner OpenAPI spec), hcloud-python
compatibility, and the loader's lookups."""
from __future__ import annotations

import copy
import json
import sys
import warnings
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO / "localcloud") not in sys.path:
    sys.path.insert(0, str(_REPO / "localcloud"))

from localcloud.catalog import CATALOG, Catalog  # noqa: E402

from conftest import SPEC_PATH, null_tolerant, spec_missing  # noqa: E402

SPEC_URI = "urn:hcloud-openapi"


@pytest.fixture(scope="module")
def validate():
    spec_missing()
    from openapi_schema_validator import OAS30Validator
    from openapi_schema_validator import oas30_format_checker
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    spec = null_tolerant(json.loads(SPEC_PATH.read_text()))
    registry = Registry().with_resource(
        SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT4)
    )

    def _validate(instance, schema_name):
        schema = {"$ref": f"{SPEC_URI}#/components/schemas/{schema_name}"}
        OAS30Validator(
            schema, registry=registry, format_checker=oas30_format_checker
        ).validate(instance)

    return _validate


# --- schema --------------------------------------------------------------------------------


@pytest.mark.parametrize("loc", CATALOG.locations, ids=lambda l: l["name"])
def test_location_schema(validate, loc):
    validate(loc, "location")


@pytest.mark.parametrize("st", CATALOG.server_types, ids=lambda t: t["name"])
def test_server_type_schema(validate, st):
    validate(st, "server_type")
    validate({"server_type": st}, "get_server_type_response")
    for entry in st["locations"]:
        assert set(entry) == {"id", "name", "deprecation", "available", "recommended"}
    assert st["included_traffic"] == 0
    assert [p["location"] for p in st["prices"]] == [l["name"] for l in st["locations"]]


@pytest.mark.parametrize("img", CATALOG.images, ids=lambda i: f"{i['name']}-{i['architecture']}")
def test_image_schema(validate, img):
    validate(img, "image")


@pytest.mark.parametrize("lbt", CATALOG.load_balancer_types, ids=lambda t: t["name"])
def test_load_balancer_type_schema(validate, lbt):
    validate(lbt, "load_balancer_type")
    assert lbt["deprecated"] is None and lbt["deprecation"] is None


def test_pricing_schema(validate):
    validate({"pricing": CATALOG.pricing()}, "list_prices_response")


def test_list_responses_schema(validate):
    def meta(items):
        return {"pagination": {"page": 1, "per_page": 50, "previous_page": None, "next_page": None,
                               "last_page": 1, "total_entries": len(items)}}

    for key, schema in [("locations", "list_locations_response"),
                        ("server_types", "list_server_types_response"),
                        ("images", "list_images_response"),
                        ("load_balancer_types", "list_load_balancer_types_response")]:
        items = getattr(CATALOG, key)
        validate({key: items, "meta": meta(items)}, schema)


# --- prices --------------------------------------------------------------------------------


def _all_prices():
    for kind in (CATALOG.server_types, CATALOG.load_balancer_types):
        for t in kind:
            for p in t["prices"]:
                yield from (p["price_hourly"], p["price_monthly"], p["price_per_tb_traffic"])


def test_price_strings():
    for price in _all_prices():
        net, gross = price["net"], price["gross"]
        assert len(net.split(".")[1]) == 10 and len(gross.split(".")[1]) == 16
        assert Decimal(gross) == (Decimal(net) * Decimal("1.19")).quantize(Decimal(gross))


def test_included_traffic_per_region():
    for st in CATALOG.server_types:
        for p in st["prices"]:
            eu = CATALOG.location(p["location"])["network_zone"] == "eu-central"
            assert p["included_traffic"] == (21990232555520 if eu else 1099511627776)


def test_pricing_derived_from_types():
    pricing = CATALOG.pricing()
    assert pricing["currency"] == "EUR" and pricing["vat_rate"] == "19.00"
    assert [(t["id"], t["name"]) for t in pricing["server_types"]] == [
        (t["id"], t["name"]) for t in CATALOG.server_types
    ]
    st = CATALOG.server_type("cpx22")
    assert next(t for t in pricing["server_types"] if t["id"] == 109)["prices"] == st["prices"]
    assert [t["name"] for t in pricing["load_balancer_types"]] == ["lb11", "lb21", "lb31"]
    for key in ("image", "volume", "server_backup", "floating_ips", "floating_ip", "primary_ips",
                "traffic"):
        assert key in pricing


# --- hcloud-python -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hclient():
    from hcloud import Client

    return Client(token="not-used")


def test_hcloud_builds_locations():
    from hcloud.locations import Location

    for data in CATALOG.locations:
        loc = Location.from_dict(copy.deepcopy(data))
        assert loc.id == data["id"] and loc.network_zone == data["network_zone"]


def test_hcloud_builds_server_types(hclient):
    from hcloud.server_types import BoundServerType

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for data in CATALOG.server_types:
            st = BoundServerType(hclient.server_types, copy.deepcopy(data))
            assert st.id == data["id"] and st.name == data["name"]
            assert st.architecture in ("x86", "arm")
            assert [l.location.name for l in st.locations] == [l["name"] for l in data["locations"]]
            for l in st.locations:
                assert isinstance(l.available, bool) and isinstance(l.recommended, bool)
        cx22 = BoundServerType(hclient.server_types, copy.deepcopy(CATALOG.server_type("cx22")))
        assert cx22.deprecation.unavailable_after == datetime(2025, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
        assert cx22.locations[0].deprecation.announced.year == 2025


def test_hcloud_builds_images(hclient):
    from hcloud.images import BoundImage

    for data in CATALOG.images:
        img = BoundImage(hclient.images, copy.deepcopy(data))
        assert img.id == data["id"] and img.architecture == data["architecture"]
        assert img.created_from is None and img.bound_to is None


def test_hcloud_builds_load_balancer_types(hclient):
    from hcloud.load_balancer_types import BoundLoadBalancerType

    for data in CATALOG.load_balancer_types:
        lbt = BoundLoadBalancerType(hclient.load_balancer_types, copy.deepcopy(data))
        assert lbt.max_targets == data["max_targets"]


# --- content / lookups ---------------------------------------------------------------------


def test_ids_and_names_unique():
    for items in (CATALOG.locations, CATALOG.server_types, CATALOG.images, CATALOG.load_balancer_types):
        ids = [i["id"] for i in items]
        assert len(ids) == len(set(ids))
    for items in (CATALOG.locations, CATALOG.server_types, CATALOG.load_balancer_types):
        names = [i["name"] for i in items]
        assert len(names) == len(set(names))
    pairs = [(i["name"], i["architecture"]) for i in CATALOG.images]
    assert len(pairs) == len(set(pairs))


def test_known_ids():
    assert CATALOG.location("hel1")["id"] == 3
    assert CATALOG.server_type("cx22")["id"] == 104
    assert CATALOG.server_type("cpx22")["id"] == 109
    assert CATALOG.server_type("cpx32")["id"] == 110
    assert CATALOG.server_type("cpx11")["id"] == 22
    assert CATALOG.server_type("cpx21")["id"] == 23
    assert CATALOG.image("debian-12", "arm")["id"] == 114690389
    assert CATALOG.image("ubuntu-24.04")["id"] == 161547269
    assert CATALOG.image("debian-13", "x86")["id"] == 310554929
    assert CATALOG.load_balancer_type("lb11")["id"] == 1


def test_location_content():
    zones = {l["name"]: (l["id"], l["network_zone"]) for l in CATALOG.locations}
    assert zones == {
        "fsn1": (1, "eu-central"), "nbg1": (2, "eu-central"), "hel1": (3, "eu-central"),
        "ash": (4, "us-east"), "hil": (5, "us-west"), "sin": (6, "ap-southeast"),
    }


@pytest.mark.parametrize(
    "method,ref,expected_id",
    [
        ("location", 3, 3), ("location", "3", 3), ("location", "hel1", 3),
        ("server_type", 109, 109), ("server_type", "109", 109), ("server_type", "cpx22", 109),
        ("load_balancer_type", 2, 2), ("load_balancer_type", "2", 2), ("load_balancer_type", "lb21", 2),
        ("image", 114690389, 114690389), ("image", "114690389", 114690389),
        ("image", "debian-12", 114690387),
    ],
)
def test_lookup(method, ref, expected_id):
    assert getattr(CATALOG, method)(ref)["id"] == expected_id


@pytest.mark.parametrize("method", ["location", "server_type", "image", "load_balancer_type"])
def test_lookup_missing(method):
    lookup = getattr(CATALOG, method)
    assert lookup("nope") is None
    assert lookup(999999999) is None
    assert lookup("999999999") is None
    assert lookup(None) is None


def test_image_architecture_variants():
    for name in ("debian-12", "debian-13", "ubuntu-22.04", "ubuntu-24.04"):
        x86, arm = CATALOG.image(name, "x86"), CATALOG.image(name, "arm")
        assert x86["architecture"] == "x86" and arm["architecture"] == "arm"
        assert x86["id"] != arm["id"]
        assert CATALOG.image(name) is x86
    assert CATALOG.image("debian-12", "riscv") is None


def test_line_up():
    names = {t["name"] for t in CATALOG.server_types}
    expected = (
        {f"cx{n}3" for n in (2, 3, 4, 5)} | {f"cx{n}2" for n in (2, 3, 4, 5)}
        | {f"cpx{n}2" for n in (1, 2, 3, 4, 5, 6)} | {f"cpx{n}1" for n in (1, 2, 3, 4, 5)}
        | {f"ccx{n}3" for n in (1, 2, 3, 4, 5, 6)} | {f"cax{n}1" for n in (1, 2, 3, 4)}
    )
    assert names == expected
    cx23 = CATALOG.server_type("cx23")
    assert (cx23["cores"], cx23["memory"], cx23["disk"], cx23["category"]) == (2, 4.0, 40, "cost_optimized")
    assert CATALOG.server_type("cax11")["architecture"] == "arm"
    assert CATALOG.server_type("ccx13")["cpu_type"] == "dedicated"


def test_orderable():
    eu, us_sg = ("fsn1", "nbg1", "hel1"), ("ash", "hil", "sin")
    cx22 = CATALOG.server_type("cx22")
    assert cx22["deprecated"] is True and cx22["deprecation"] is not None
    for loc in eu + us_sg:
        assert CATALOG.orderable(cx22, loc) is not None
    assert CATALOG.orderable(cx22, "nbg1") == "deprecated"
    assert CATALOG.orderable(cx22, "ash") == "not offered"
    assert all(not l["available"] for l in cx22["locations"])

    assert CATALOG.orderable(CATALOG.server_type("cx23"), "nbg1") is None
    assert CATALOG.orderable(CATALOG.server_type("cx23"), "ash") == "not offered"
    for name in ("cax11", "cax21", "cax31", "cax41"):
        st = CATALOG.server_type(name)
        assert CATALOG.orderable(st, "ash") == "not offered"
        assert CATALOG.orderable(st, "fsn1") is None
    for name in ("cpx12", "cpx22", "ccx13", "ccx63"):
        assert all(CATALOG.orderable(CATALOG.server_type(name), loc) is None for loc in eu + us_sg)

    cpx11 = CATALOG.server_type("cpx11")
    assert cpx11["deprecated"] is False
    assert all(l["deprecation"] is not None for l in cpx11["locations"])
    assert CATALOG.orderable(cpx11, "fsn1") is None
    later = datetime(2027, 6, 1, tzinfo=timezone.utc)
    assert CATALOG.orderable(cpx11, "fsn1", now=later) == "deprecated"
    assert CATALOG.orderable(cpx11, "nowhere") == "not offered"


def test_unavailable_flag():
    st = copy.deepcopy(CATALOG.server_type("cpx22"))
    st["locations"][0]["available"] = False
    assert CATALOG.orderable(st, st["locations"][0]["name"]) == "unavailable"


def test_fresh_catalog_equals_singleton():
    fresh = Catalog()
    assert fresh.server_types == CATALOG.server_types
    assert fresh.pricing() == CATALOG.pricing()
