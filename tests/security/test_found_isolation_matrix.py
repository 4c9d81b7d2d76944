"""Isolation matrix: every role × two tenants (in two agencies) × every tenant-scoped admin URL and REST endpoint.

The URL list is built from the views registered with the app (their GET routes), so a
new view is covered without touching this file. Every business row carries a marker of
its tenant; a response may only ever contain markers of the tenant the user works in,
whatever the URL, id, search or API call. Out-of-scope access answers 302/403/404.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

PASSWORD = "password-1"
# GET endpoints that change something (FAB's delete/action accept GET) or leave the tenant.
UNSAFE = {"delete", "action", "action_post", "download", "switch", "revoke", "provision", "link", "unlink", "invite"}
IDS = (3,)  # location 3 exists only in xb and ya; id 1 of every table exists everywhere and adds nothing


@dataclass
class Biz:
    slug: str
    row: str         # in every business row's text of this tenant
    name: str        # the business name
    bob: str         # only in rows of staff member Bob (staff log-ins must not see them)
    agency: str
    invitee: str = field(default_factory=lambda: _token("inv"))  # in the invitation's address
    ids: dict = field(default_factory=dict)


def _token(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def _setup(biz: Biz, extra_locations: int) -> dict:
    r, bob = biz.row, biz.bob
    week = [{"location": "main", "weekday": d, "start": "09:00", "end": "17:00"} for d in ("mon", "tue", "wed", "thu", "fri")]
    return {
        "version": 1,
        "tenant": {"slug": biz.slug, "name": biz.name, "timezone": "Europe/Berlin", "currency": "EUR"},
        "locations": [{"key": "main", "name": f"{r} Main", "timezone": "Europe/Berlin", "address": f"{r} street"}]
        + [{"key": f"x{i}", "name": f"{r} Extra {i}", "timezone": "Europe/Berlin"} for i in range(extra_locations)],
        "categories": [{"key": "cat", "name": f"{r} Category"}],
        "services": [{"key": "visit", "name": f"{r} Visit", "duration_min": 30, "category": "cat"}],
        "staff": [
            {"key": "ann", "name": f"{r} Ann", "email": f"{r}.ann@example.org", "services": ["visit"], "locations": ["main"],
             "hours": week, "breaks": [{"weekday": "mon", "start": "12:00", "end": "12:30"}],
             "time_off": [{"start": "2030-02-01T00:00:00Z", "end": "2030-02-02T00:00:00Z", "reason": f"{r} holiday"}]},
            {"key": "bob", "name": f"{r} {bob} Bob", "email": f"{bob}@example.org", "services": ["visit"], "locations": ["main"],
             "hours": week,
             "time_off": [{"start": "2030-03-01T00:00:00Z", "end": "2030-03-02T00:00:00Z", "reason": f"{r} {bob} off"}]},
        ],
        "appointments": [
            {"service": "visit", "staff": "ann", "location": "main", "start": "2030-01-07T09:00:00Z",
             "customer": {"name": f"{r} Carla", "email": f"{r}.carla@example.org"}},
            {"service": "visit", "staff": "bob", "location": "main", "start": "2030-01-07T10:00:00Z",
             "customer": {"name": f"{r} {bob} Dora", "email": f"{bob}.dora@example.org"}},
        ],
    }


@pytest.fixture(scope="module")
def world(app):
    """Agencies X and Y; businesses xa, xb (X) and ya (Y), each with rows, an API key and an invitation."""
    from app.extensions import db
    from app.models import tenant as tm
    from app.models.public import ROLE_CLIENT_ADMIN, Tenant
    from app.security import Scope
    from app.services.invitations import Target, invite
    from app.services.people import create_api_key, create_user_with_role
    from app.services.setup_io import import_setup
    from app.tenancy import tenant_session
    from tenants.provisioning import create_agency

    agencies = {k: _token("ag") for k in ("X", "Y")}
    bizs = {
        key: Biz(_token(f"iso{key}_"), _token("rw"), _token("nm"), _token("bob"), agency)
        for key, agency in (("xa", "X"), ("xb", "X"), ("ya", "Y"))
    }
    users = {}
    with app.app_context():
        for key, slug in agencies.items():
            create_agency(db.session, slug, f"Agency {slug}")
        db.session.commit()
        for key, biz in bizs.items():
            # xa has one location; the others have more, so their higher ids do not exist in xa.
            import_setup(db.engine, _setup(biz, 0 if key == "xa" else 2), agencies[biz.agency])
            with tenant_session(db.engine, biz.slug) as (session, _):
                biz.ids = {s.key: s.id for s in session.scalars(select(tm.Staff))}
                biz.ids["locations"] = sorted(session.scalars(select(tm.Location.id)))
                biz.ids["appointments"] = sorted(str(i) for i in session.scalars(select(tm.Appointment.id)))
            tenant = db.session.scalar(select(Tenant).where(Tenant.slug == biz.slug))
            _, biz.api_key = create_api_key(db.session, tenant, f"{biz.row} key")
            invite(db.session, Scope(tenant_roles={tenant.id: {ROLE_CLIENT_ADMIN}}), None, f"{biz.invitee}@example.org",
                   Target(ROLE_CLIENT_ADMIN, tenant_id=tenant.id))
            db.session.commit()

        def user(role, **scope):
            name = _token("mx")
            create_user_with_role(db.session, username=name, email=f"{name}@example.org", password=PASSWORD, role=role, **scope)
            return name

        users["Platform Admin"] = user("Platform Admin")
        users["Agency Owner"] = user("Agency Owner", agency_slug=agencies["X"])
        users["Client Admin"] = user("Client Admin", tenant_slug=bizs["xa"].slug)
        users["Staff"] = user("Staff", tenant_slug=bizs["xa"].slug, staff_id=bizs["xa"].ids["ann"])
        users["Auditor"] = user("Auditor", tenant_slug=bizs["xa"].slug)
        users["Agency Auditor"] = user("Auditor", agency_slug=agencies["X"])
        db.session.commit()
    return agencies, bizs, users


def _scoped_views(app):
    from app import security

    scoped = (security.TENANT_VIEWS | security.AGENCY_VIEWS | security.STAFF_VIEWS | security.STAFF_READ_VIEWS
              | security.AUDIT_VIEWS)
    return {v.endpoint: v for v in app.appbuilder.baseviews if (v.class_permission_name or type(v).__name__) in scoped}


def _uses_uuid(view) -> bool:
    datamodel = getattr(view, "datamodel", None)
    if datamodel is None:
        return False
    column = datamodel.obj.__table__.c[datamodel.get_pk_name()]
    return column.type.python_type is uuid.UUID


def _urls(app, uuids=()) -> list[str]:
    """GET URLs of every tenant-scoped view and API; routes with one id argument get ids 1-3 (or the given UUIDs)."""
    views = _scoped_views(app)
    adapter = app.url_map.bind("localhost")
    urls = []
    for rule in app.url_map.iter_rules():
        owner, _, method = rule.endpoint.partition(".")
        if owner not in views or "GET" not in rule.methods or method in UNSAFE:
            continue
        args = sorted(rule.arguments - set(rule.defaults or {}))
        if not args:
            urls.append(adapter.build(rule.endpoint, {}, method="GET"))
        elif len(args) == 1 and (args[0] == "pk" or args[0].endswith("_id")):
            converter = type(rule._converters[args[0]]).__name__
            if converter == "IntegerConverter":
                ids = IDS
            else:
                ids = list(uuids) if _uses_uuid(views[owner]) else list(IDS) + list(uuids)[:1]
            urls += [adapter.build(rule.endpoint, {args[0]: i}, method="GET") for i in ids]
    return sorted(set(urls))


def _text(response) -> str:
    """What a response says, readable for the markers: text as is, a ZIP's members and a PDF's text
    unpacked (a marker inside a compressed export must still be found)."""
    import io
    import subprocess
    import zipfile

    data = response.get_data()
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "\n".join(archive.read(name).decode("utf-8", "replace") for name in archive.namelist())
    if data[:5] == b"%PDF-":
        return subprocess.run(["pdftotext", "-", "-"], input=data, capture_output=True, check=True).stdout.decode()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise AssertionError(f"{response.request.path}: a binary answer this test cannot read "
                             f"({response.content_type}, {response.headers.get('Content-Encoding')})") from None


def _login(app, username):
    client = app.test_client()
    response = client.post("/login/", data={"username": username, "password": PASSWORD})
    assert response.status_code == 302 and "/login" not in response.headers["Location"]
    return client


# (role, business worked in, businesses whose rows must stay invisible, businesses it may not switch to)
MATRIX = [
    ("Platform Admin", "xa", ("xb", "ya"), ()),
    ("Platform Admin", "ya", ("xa", "xb"), ()),
    ("Agency Owner", "xa", ("xb", "ya"), ("ya",)),
    ("Agency Owner", "xb", ("xa", "ya"), ("ya",)),
    ("Client Admin", "xa", ("xb", "ya"), ("xb", "ya")),
    ("Staff", "xa", ("xb", "ya"), ("xb", "ya")),
    ("Auditor", "xa", ("xb", "ya"), ("xb", "ya")),
    ("Agency Auditor", "xb", ("xa", "ya"), ("ya",)),
]


@pytest.mark.parametrize("role,home,hidden,no_switch", MATRIX, ids=[f"{r}-{h}" for r, h, *_ in MATRIX])
def test_no_row_of_another_tenant_on_any_url(app, world, role, home, hidden, no_switch):
    agencies, bizs, users = world
    client = _login(app, users[role])
    assert client.post(f"/switch/{bizs[home].slug}").status_code == 302
    for other in no_switch:
        assert client.post(f"/switch/{bizs[other].slug}").status_code == 404
    forbidden = {bizs[h].row for h in hidden}
    sees_agency = role in ("Platform Admin", "Agency Owner", "Agency Auditor")
    if not sees_agency:
        forbidden |= {bizs[h].name for h in hidden}  # not even the other business's name
    if role != "Platform Admin":
        # A platform admin's platform-wide pages (the account mail outbox) may name any invitee.
        forbidden |= {bizs[h].invitee for h in hidden}
    if role in ("Agency Owner", "Agency Auditor"):
        forbidden |= {bizs["ya"].name, f"Agency {agencies['Y']}"}
    urls = _urls(app, [u for b in bizs.values() for u in b.ids["appointments"]])
    assert len(urls) > 60, urls  # the list is really built from the registered views
    allowed = 0
    for url in urls:
        response = client.get(url)
        body = _text(response)
        # A page that needs parameters may refuse the bare URL (400/422): what matters is no leak.
        assert response.status_code in (200, 302, 400, 403, 404, 422), (url, response.status_code)
        leaked = [marker for marker in forbidden if marker in body]
        assert not leaked, (url, leaked)
        allowed += response.status_code == 200
    assert allowed >= 8, allowed

    # Searches for the other tenants' rows find nothing (the page may echo the search term itself).
    for h in hidden:
        for url in (f"/locationview/list/?_flt_0_name={bizs[h].row}", f"/customerview/list/?_flt_0_name={bizs[h].row}",
                    f"/staffview/list/?_flt_2_name={bizs[h].row}",
                    f"/api/v1/customers/?q=(filters:!((col:name,opr:sw,value:{bizs[h].row})))"):
            body = client.get(url).get_data(as_text=True)
            assert f"{bizs[h].row} " not in body and f"{bizs[h].row}." not in body, url


@pytest.mark.parametrize("role", ["Platform Admin", "Agency Owner", "Client Admin", "Auditor"])
def test_in_scope_roles_see_their_rows_and_ids_from_elsewhere_are_404(app, world, role):
    _, bizs, users = world
    client = _login(app, users[role])
    client.post(f"/switch/{bizs['xa'].slug}")
    listing = client.get("/locationview/list/").get_data(as_text=True)
    assert f"{bizs['xa'].row} Main" in listing
    search = client.get(f"/customerview/list/?_flt_0_name={bizs['xa'].row}").get_data(as_text=True)
    assert f"{bizs['xa'].row} Carla" in search
    # Location 3 exists only in xb and ya.
    missing = max(bizs["xb"].ids["locations"])
    assert missing not in bizs["xa"].ids["locations"]
    assert client.get(f"/locationview/show/{missing}").status_code == 404
    assert client.get(f"/api/v1/locations/{missing}").status_code == 404
    api = client.get("/api/v1/customers/?q=(page_size:100)").get_json()
    assert {r["name"] for r in api["result"]} == {f"{bizs['xa'].row} Carla", f"{bizs['xa'].row} {bizs['xa'].bob} Dora"}


def _rows(body: str) -> str:
    """A list page without its search widgets (scripts and selects that carry filter choices)."""
    return re.sub(r"<script.*?</script>|<select.*?</select>", "", body, flags=re.S)


def test_staff_sees_only_own_calendar(app, world):
    _, bizs, users = world
    client = _login(app, users["Staff"])
    # The day of both Ann's and Bob's appointment: only Ann's is shown to Ann.
    day = _rows(client.get("/myday/list/?day=2030-01-07").get_data(as_text=True))
    assert f"{bizs['xa'].row} Carla" in day and bizs["xa"].bob not in day
    off = _rows(client.get("/mytimeoff/list/").get_data(as_text=True))
    assert f"{bizs['xa'].row} holiday" in off and bizs["xa"].bob not in off
    for url in ("/appointmentview/list/", "/customerview/list/", "/staffview/list/", "/api/v1/appointments/"):
        assert client.get(url).status_code in (302, 403), url
    # A colleague's profile and appointments are not found, and cannot be edited.
    bob = bizs["xa"].ids["bob"]
    assert client.get(f"/myprofile/show/{bob}").status_code == 404
    assert client.post(f"/myprofile/edit/{bob}", data={"phone": "+49 1"}).status_code == 404
    for appointment in bizs["xa"].ids["appointments"]:
        assert client.get(f"/myday/show/{appointment}").status_code in (200, 404)
    shown = [a for a in bizs["xa"].ids["appointments"] if client.get(f"/myday/show/{a}").status_code == 200]
    assert len(shown) == 1  # Ann's own, not Bob's
    own = bizs["xa"].ids["ann"]
    assert client.post(f"/myprofile/edit/{own}", data={"phone": "+49 30 1234", "bio": "", "photo_url": ""}).status_code == 302
    assert "+49 30 1234" in client.get(f"/myprofile/show/{own}").get_data(as_text=True)


def test_staff_pages_name_no_colleague_anywhere(app, world):
    _, bizs, users = world
    client = _login(app, users["Staff"])
    for url in _urls(app, bizs["xa"].ids["appointments"]) + ["/myday/list/?day=2030-01-07"]:
        assert bizs["xa"].bob not in _text(client.get(url)), url


@pytest.mark.parametrize("key_of", ["xa", "ya"])
def test_api_key_matrix(app, world, key_of):
    """An API key works in its own tenant only: on every REST URL no other tenant's row appears."""
    _, bizs, _ = world
    client = app.test_client()
    headers = {"Authorization": f"Bearer {bizs[key_of].api_key}"}
    forbidden = {b.row for k, b in bizs.items() if k != key_of} | {b.name for k, b in bizs.items() if k != key_of}
    api_urls = [u for u in _urls(app, [u for b in bizs.values() for u in b.ids["appointments"]]) if u.startswith("/api/")]
    assert len(api_urls) >= 9 * 3
    seen_own = 0
    for url in api_urls:
        response = client.get(url, headers=headers)
        body = response.get_data(as_text=True)
        # A resource that needs parameters (availability) may refuse the bare URL: what matters is no leak.
        assert response.status_code in (200, 400, 403, 404, 422), (url, response.status_code)
        assert not [m for m in forbidden if m in body], url
        seen_own += bizs[key_of].row in body
    assert seen_own >= 5
    # The admin pages do not accept an API key as a log-in for another tenant either.
    page = client.get("/locationview/list/", headers=headers).get_data(as_text=True)
    assert not [m for m in forbidden if m in page]
