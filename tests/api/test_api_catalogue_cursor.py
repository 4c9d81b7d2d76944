"""Catalogue lists page by keyset like appointments (`limit`, `cursor` → `{result, next_cursor}`, by id):
a walk sees every row once, also while rows are added; FAB's offset pages (`q`) still answer as before."""

from __future__ import annotations

import pytest

from support import minimal_setup

RESOURCES = ("services", "categories", "staff", "locations", "customers")


def _setup() -> dict:
    setup = minimal_setup()
    setup["categories"] = [{"key": f"cat{i}", "name": f"Category {i}"} for i in range(7)]
    setup["locations"] += [{"key": f"loc{i}", "name": f"Location {i}", "timezone": "Europe/Berlin"} for i in range(6)]
    setup["services"] += [{"key": f"svc{i}", "name": f"Service {i}", "duration_min": 30, "category": f"cat{i % 7}"}
                          for i in range(8)]
    setup["staff"] += [{"key": f"st{i}", "name": f"Staff {i}", "services": ["visit"], "locations": ["main"]}
                       for i in range(5)]
    return setup


@pytest.fixture()
def catalogue(make_tenant, make_api_key, client):
    slug = make_tenant(_setup())
    auth = {"Authorization": f"Bearer {make_api_key(slug)}"}
    for i in range(9):
        made = client.post("/api/v1/customers/", headers=auth, json={"name": f"C{i}", "email": f"c{i}@example.com"})
        assert made.status_code == 201
    return slug, auth


def _all_by_offset(client, auth, resource) -> list[int]:
    body = client.get(f"/api/v1/{resource}/?q=(page_size:500)", headers=auth).get_json()
    assert body["count"] == len(body["ids"])
    return sorted(row["id"] for row in body["result"])


def _walk(client, auth, resource, limit, between=None) -> list[int]:
    seen, cursor, pages = [], None, 0
    while True:
        url = f"/api/v1/{resource}/?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        answer = client.get(url, headers=auth)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body = answer.get_json()
        assert set(body) == {"result", "next_cursor"} and len(body["result"]) <= limit
        seen += [row["id"] for row in body["result"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
        assert pages < 100
        if between:
            between(pages)


@pytest.mark.parametrize("resource", RESOURCES)
def test_a_keyset_walk_matches_the_offset_list(client, catalogue, resource):
    _slug, auth = catalogue
    everything = _all_by_offset(client, auth, resource)
    assert len(everything) >= 6
    for limit in (1, 4, 200):
        walked = _walk(client, auth, resource, limit)
        assert walked == everything, limit  # by id ascending, each row once


def test_rows_added_during_a_walk_are_neither_skipped_nor_repeated(client, catalogue):
    _slug, auth = catalogue
    before = _all_by_offset(client, auth, "customers")
    added: list[int] = []

    def insert(page):
        for j in range(2):
            made = client.post("/api/v1/customers/", headers=auth,
                               json={"name": f"New {page}.{j}", "email": f"new{page}.{j}@example.com"})
            assert made.status_code == 201
            added.append(made.get_json()["id"])

    walked = _walk(client, auth, "customers", 3, between=insert)
    assert len(walked) == len(set(walked)), "a row came twice"
    assert walked == sorted(walked)
    assert set(before) <= set(walked), "a row present from the start was skipped"
    # Rows added behind the walk's end come in later pages (ids grow), so the walk sees them all.
    assert set(added) <= set(walked)
    assert set(walked) == set(before) | set(added)


def test_the_same_walk_with_rows_added_is_stable_for_categories(client, catalogue):
    _slug, auth = catalogue
    before = _all_by_offset(client, auth, "categories")
    counter = iter(range(100))

    def insert(_page):
        n = next(counter)
        assert client.post("/api/v1/categories/", headers=auth, json={"key": f"late{n}", "name": f"Late {n}"}).status_code == 201

    walked = _walk(client, auth, "categories", 2, between=insert)
    assert len(walked) == len(set(walked)) and set(before) <= set(walked)
    assert set(walked) == set(_all_by_offset(client, auth, "categories"))


def test_keyset_pages_take_filters_but_refuse_offset_arguments_and_foreign_cursors(client, catalogue):
    _slug, auth = catalogue
    filtered = client.get("/api/v1/services/?limit=2&q=(filters:!((col:key,opr:sw,value:svc)))", headers=auth).get_json()
    assert [row["key"] for row in filtered["result"]] == ["svc0", "svc1"] and filtered["next_cursor"]
    rest = client.get(f"/api/v1/services/?limit=50&cursor={filtered['next_cursor']}"
                      "&q=(filters:!((col:key,opr:sw,value:svc)))", headers=auth).get_json()
    assert [row["key"] for row in rest["result"]] == [f"svc{i}" for i in range(2, 8)] and rest["next_cursor"] is None

    mixed = client.get("/api/v1/services/?limit=2&q=(page:1,page_size:2)", headers=auth)
    assert mixed.status_code == 400 and mixed.get_json()["error"]["field"] == "q"
    unknown = client.get("/api/v1/services/?limit=2&q=(filters:!((col:secret,opr:eq,value:1)))", headers=auth)
    assert unknown.status_code == 400 and unknown.get_json()["error"]["field"] == "q"
    for bad in ("0", "201", "x", "-1"):
        answer = client.get(f"/api/v1/staff/?limit={bad}", headers=auth)
        assert answer.status_code == 422 and answer.get_json()["error"]["field"] == "limit", bad
    for bad in ("nonsense", filtered["next_cursor"]):  # garbage, and the services list's cursor on staff
        answer = client.get(f"/api/v1/staff/?cursor={bad}", headers=auth)
        assert answer.status_code == 422 and answer.get_json()["error"]["field"] == "cursor", bad

    # Without limit or cursor the list is FAB's offset page, as existing clients expect.
    offset = client.get("/api/v1/services/?q=(page:1,page_size:3,order_column:key,order_direction:asc)",
                        headers=auth).get_json()
    assert offset["count"] == 9 and [row["key"] for row in offset["result"]] == ["svc3", "svc4", "svc5"]
    assert "next_cursor" not in offset


def test_openapi_documents_both_ways_to_page(client, catalogue):
    _slug, auth = catalogue
    spec = client.get("/api/v1/openapi.json").get_json()
    for resource in RESOURCES:
        op = spec["paths"][f"/api/v1/{resource}/"]["get"]
        refs = {p.get("$ref") for p in op["parameters"]}
        assert {"#/components/parameters/Cursor", "#/components/parameters/Limit"} <= refs
        assert "next_cursor" in op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
