"""Agency API keys: read-only analytics of every business of one agency (the rollup, and one business's
figures with ?tenant=), nothing of another agency, nothing but analytics; made by an agency owner."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select, update

from support import minimal_setup, unique_slug

UTC = dt.timezone.utc
RANGE = "from=2027-03-01&to=2027-03-31"


def _bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def _rows(n: int, status: str = "confirmed", price: str = "20.00") -> list[dict]:
    base = dt.datetime(2027, 3, 2, 9, 0, tzinfo=UTC)
    return [dict(start=base + dt.timedelta(days=i), status=status, price=price) for i in range(n)]


def _setup(currency: str) -> dict:
    setup = minimal_setup()
    setup["tenant"]["currency"] = currency
    return setup


def _agency(app, name: str = "Agency") -> str:
    from app.extensions import db
    from tenants.provisioning import create_agency

    slug = unique_slug("ag").replace("_", "-")
    with app.app_context():
        create_agency(db.session, slug, name)
        db.session.commit()
    return slug


def _agency_key(app, agency_slug: str, **kw) -> tuple[int, dict]:
    from app.extensions import db
    from app.models.public import Agency
    from app.services.people import create_agency_api_key

    with app.app_context():
        agency = db.session.scalar(select(Agency).where(Agency.slug == agency_slug))
        row, secret = create_agency_api_key(db.session, agency, "reporting", **kw)
        db.session.commit()
        return row.id, _bearer(secret)


def _set(app, model, ident, **values):
    from app.extensions import db

    with app.app_context():
        db.session.execute(update(model).where(model.id == ident).values(**values))
        db.session.commit()


@pytest.fixture()
def two_agencies(app, make_tenant, put_appointments):
    """Agency A: eur (3 bookings), usd (2, one cancelled), sus (suspended, 4); agency B: other (5)."""
    from app.extensions import db
    from app.models.public import Tenant

    a, b = _agency(app, "A"), _agency(app, "B")
    eur = make_tenant(_setup("EUR"), agency=a)
    usd = make_tenant(_setup("USD"), agency=a)
    sus = make_tenant(_setup("EUR"), agency=a)
    other = make_tenant(_setup("EUR"), agency=b)
    put_appointments(eur, _rows(3))
    put_appointments(usd, _rows(1) + _rows(1, status="cancelled"))
    put_appointments(sus, _rows(4))
    put_appointments(other, _rows(5))
    with app.app_context():
        db.session.execute(update(Tenant).where(Tenant.slug == sus).values(status=Tenant.STATUS_SUSPENDED))
        db.session.commit()
    return {"a": a, "b": b, "eur": eur, "usd": usd, "sus": sus, "other": other}


def test_agency_key_reads_the_rollup_of_its_agency_per_currency(client, app, two_agencies):
    t = two_agencies
    _, key = _agency_key(app, t["a"])
    answer = client.get(f"/api/v1/analytics/agency?{RANGE}", headers=key)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    rows = {row["tenant"]: row for row in body["tenants"]}
    assert set(rows) == {t["eur"], t["usd"], t["sus"]}  # never agency B's business
    assert rows[t["eur"]]["bookings"] == 3 and rows[t["usd"]]["cancelled"] == 1
    assert rows[t["sus"]]["status"] == "suspended" and rows[t["eur"]]["status"] == "active"
    money = {c["currency"]: c for c in body["per_currency"]}
    assert set(money) == {"EUR", "USD"}
    assert money["EUR"]["revenue_booked"] == "140.00" and money["USD"]["revenue_booked"] == "20.00"
    # Agency B's key sees B only.
    _, key_b = _agency_key(app, t["b"])
    assert [row["tenant"] for row in client.get(f"/api/v1/analytics/agency?{RANGE}", headers=key_b)
            .get_json()["tenants"]] == [t["other"]]


def test_agency_key_reads_one_business_of_its_agency_by_slug(client, app, two_agencies):
    t = two_agencies
    key_id, key = _agency_key(app, t["a"])
    eur = client.get(f"/api/v1/analytics/bookings?{RANGE}&tenant={t['eur']}", headers=key)
    assert eur.status_code == 200 and eur.get_json()["tenant"] == t["eur"] and eur.get_json()["total"] == 3
    usd = client.get(f"/api/v1/analytics/revenue?{RANGE}&tenant={t['usd']}", headers=key).get_json()
    assert [c["currency"] for c in usd["currencies"]] == ["USD"]
    csv = client.get(f"/api/v1/analytics/sources?{RANGE}&tenant={t['eur']}&format=csv", headers=key)
    assert csv.mimetype == "text/csv" and csv.get_data(as_text=True).splitlines()[1] == "admin,3,0,0"

    for slug, status, code in ((t["other"], 404, "not_found"),          # another agency's business
                               ("no-such-business", 404, "not_found"),
                               (t["sus"], 403, "tenant_suspended")):
        answer = client.get(f"/api/v1/analytics/bookings?{RANGE}&tenant={slug}", headers=key)
        assert answer.status_code == status and answer.get_json()["error"]["code"] == code, slug
        assert answer.get_json()["error"]["field"] == "tenant"
    missing = client.get(f"/api/v1/analytics/bookings?{RANGE}", headers=key)
    assert missing.status_code == 422 and missing.get_json()["error"]["field"] == "tenant"
    assert "Set-Cookie" not in missing.headers

    from app.extensions import db
    from app.models.public import ApiKey

    with app.app_context():
        row = db.session.get(ApiKey, key_id)
        assert row.request_count == 7 and row.last_used_at is not None


def test_agency_key_reaches_nothing_but_analytics_and_writes_nothing(client, app, two_agencies):
    t = two_agencies
    _, key = _agency_key(app, t["a"])
    for path in ("/api/v1/services/", f"/api/v1/customers/?tenant={t['eur']}", "/api/v1/appointments/",
                 "/api/v1/webhooks/endpoints"):
        answer = client.get(path, headers=key)
        assert answer.status_code == 403 and answer.get_json()["error"]["code"] == "not_allowed", path
    posted = client.post(f"/api/v1/analytics/bookings?tenant={t['eur']}", headers=key, json={})
    assert posted.status_code == 403
    # And not the admin pages either.
    assert client.get("/locationview/list/", headers=key).status_code == 401


def test_revoked_or_expired_agency_key_is_refused(client, app, two_agencies):
    from app.extensions import db
    from app.models.public import ApiKey
    from app.services.people import PeopleError, create_agency_api_key, revoke_api_key

    t = two_agencies
    revoked_id, revoked = _agency_key(app, t["a"])
    expiring_id, expiring = _agency_key(app, t["a"], expires_at=dt.datetime.now(UTC) + dt.timedelta(days=1))
    assert client.get(f"/api/v1/analytics/agency?{RANGE}", headers=expiring).status_code == 200
    with app.app_context():
        revoke_api_key(db.session, db.session.get(ApiKey, revoked_id))
        db.session.commit()
    _set(app, ApiKey, expiring_id, expires_at=dt.datetime.now(UTC) - dt.timedelta(seconds=1))
    gone = client.get(f"/api/v1/analytics/agency?{RANGE}", headers=revoked)
    assert gone.status_code == 401 and gone.get_json()["error"]["code"] == "unauthorized"
    old = client.get(f"/api/v1/analytics/bookings?{RANGE}&tenant={t['eur']}", headers=expiring)
    assert old.status_code == 401 and old.get_json()["error"]["code"] == "key_expired"
    with app.app_context(), pytest.raises(PeopleError):
        create_agency_api_key(db.session, db.session.get(ApiKey, revoked_id).agency, "past",
                              expires_at=dt.datetime.now(UTC) - dt.timedelta(days=1))


def test_business_key_cannot_read_the_rollup_or_another_business(client, app, make_api_key, two_agencies):
    t = two_agencies
    key = _bearer(make_api_key(t["eur"]))
    rollup = client.get(f"/api/v1/analytics/agency?{RANGE}", headers=key)
    assert rollup.status_code == 403 and rollup.get_json()["error"]["code"] == "not_allowed"
    sibling = client.get(f"/api/v1/analytics/bookings?{RANGE}&tenant={t['usd']}", headers=key)
    assert sibling.status_code == 404 and sibling.get_json()["error"]["code"] == "not_found"
    own = client.get(f"/api/v1/analytics/bookings?{RANGE}&tenant={t['eur']}", headers=key)
    assert own.status_code == 200 and own.get_json()["total"] == 3


def _created_secret(answer) -> str:
    assert answer.status_code == 201, answer.get_data(as_text=True)[:500]
    assert answer.headers["Cache-Control"] == "no-store"
    return re.search(r'<pre id="api-key-secret">(upz_[^<]+)</pre>', answer.get_data(as_text=True)).group(1)


def test_agency_owner_makes_keys_of_own_agency_in_the_admin(client, app, make_user, login, two_agencies):
    from app.extensions import db
    from app.models.public import Agency, ApiKey

    t = two_agencies
    with app.app_context():
        ids = {s: db.session.scalar(select(Agency.id).where(Agency.slug == s)) for s in (t["a"], t["b"])}
    login(client, make_user("Agency Owner", agency=t["a"]))
    form = client.get("/agencyapikeyview/add").get_data(as_text=True)
    assert t["a"] in form and t["b"] not in form  # only the owner's agencies to choose from
    # Another agency's id posted by hand is refused; nothing is written.
    assert client.post("/agencyapikeyview/add", data={"agency_id": ids[t["b"]], "name": "x"}).status_code == 404
    secret = _created_secret(client.post("/agencyapikeyview/add", data={
        "agency_id": str(ids[t["a"]]), "name": "Looker", "expires_at": "", "rate_plan": "high"}))
    with app.app_context():
        row = db.session.scalar(select(ApiKey).where(ApiKey.prefix == secret.split("_")[1]))
        assert (row.agency_id, row.tenant_id, row.scopes, row.rate_plan) == (ids[t["a"]], None, "read", "high")
        assert row.secret_hash != secret and secret not in str(row.__dict__.values())
        assert db.session.scalar(select(ApiKey).where(ApiKey.agency_id == ids[t["b"]])) is None
    listing = client.get("/agencyapikeyview/list/").get_data(as_text=True)
    assert "Looker" in listing and secret not in listing
    client.get("/logout/")
    assert client.get(f"/api/v1/analytics/agency?{RANGE}", headers=_bearer(secret)).status_code == 200
    # Agency B's owner neither lists nor revokes it; a client admin has no such page.
    login(client, make_user("Agency Owner", agency=t["b"]))
    assert "Looker" not in client.get("/agencyapikeyview/list/").get_data(as_text=True)
    assert client.post("/agencyapikeyview/action_post", data={"action": "revoke", "rowid": [row.id]}).status_code == 404
    client.get("/logout/")
    login(client, make_user("Client Admin", tenant=t["eur"]))
    assert client.get("/agencyapikeyview/list/").status_code in (302, 403)


def test_client_admin_moves_a_key_to_another_plan_in_the_admin(client, app, make_user, login, two_agencies):
    from app.extensions import db
    from app.models.public import ApiKey

    t = two_agencies
    login(client, make_user("Client Admin", tenant=t["eur"]))
    secret = _created_secret(client.post("/apikeyview/add", data={"name": "shop", "scopes": "read", "rate_plan": ""}))
    with app.app_context():
        key_id = db.session.scalar(select(ApiKey.id).where(ApiKey.prefix == secret.split("_")[1]))
    assert _row_plan(app, key_id) is None
    assert client.post(f"/apikeyview/edit/{key_id}", data={"name": "shop", "rate_plan": "high"}).status_code == 302
    assert _row_plan(app, key_id) == "high"
    refused = client.post(f"/apikeyview/edit/{key_id}", data={"name": "shop", "rate_plan": "platinum"})
    assert refused.status_code == 200 and _row_plan(app, key_id) == "high"


def _row_plan(app, key_id):
    from app.extensions import db
    from app.models.public import ApiKey

    with app.app_context():
        return db.session.get(ApiKey, key_id).rate_plan


def test_cli_makes_lists_and_revokes_agency_keys(client, app, two_agencies):
    t = two_agencies
    runner = app.test_cli_runner()
    made = runner.invoke(args=["apikeys", "create", t["a"], "--agency", "--name", "cli key", "--plan", "high"])
    assert made.exit_code == 0, made.output
    secret = re.search(r"secret \(shown once\): (upz_\S+)", made.output).group(1)
    assert client.get(f"/api/v1/analytics/agency?{RANGE}", headers=_bearer(secret)).status_code == 200
    listed = runner.invoke(args=["apikeys", "list", t["a"], "--agency"])
    assert "cli key" in listed.output and "high" in listed.output and secret not in listed.output
    refused = runner.invoke(args=["apikeys", "create", t["a"], "--agency", "--name", "x", "--location", "main"])
    assert refused.exit_code != 0 and "analytics only" in refused.output
    unknown = runner.invoke(args=["apikeys", "create", t["a"], "--agency", "--name", "x", "--plan", "platinum"])
    assert unknown.exit_code != 0 and "unknown rate plan" in unknown.output
    prefix = secret.split("_")[1]
    assert runner.invoke(args=["apikeys", "set-plan", prefix, "default"]).exit_code == 0
    assert runner.invoke(args=["apikeys", "revoke", prefix]).exit_code == 0
    assert client.get(f"/api/v1/analytics/agency?{RANGE}", headers=_bearer(secret)).status_code == 401


def test_openapi_documents_agency_keys(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "agencyKey" in spec["components"]["securitySchemes"]
    figure = spec["paths"]["/api/v1/analytics/{metric}"]["get"]
    assert {"agencyKey": []} in figure["security"]
    assert {"$ref": "#/components/parameters/Tenant"} in figure["parameters"]
    assert {"agencyKey": []} in spec["paths"]["/api/v1/analytics/agency"]["get"]["security"]
