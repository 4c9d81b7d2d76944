"""Isolation matrix for writes: every principal × every registered write route × ids of
another business or agency → refused (401/403/404/405/422, or FAB's redirect to the
log-in page) and no row of any other business or agency changes.

Built from `app.url_map`: every POST/PUT/PATCH/DELETE rule is exercised, so a new
route is covered without editing this file. Arguments are filled from what the route
names: `<pk>` of a model view / REST API with ids of its model that exist only outside
the principal's scope, `<name>` of an action with each of the view's actions (and
`action_post` with each action and foreign `rowid`s, single and bulk), `*_id` with ids
of the model it names, `<slug>` with foreign businesses. Routes without an id get a
body whose reference fields (staff, service, tenant, agency, rowid...) all point outside.

After every route the rows of every other business's schema and the public rows of
businesses and agencies outside the scope are compared with a dump taken before.

Public routes (booking API, widget, portal, provider hooks, account links, log-in)
have no role: their token or slug is the credential; their own tests cover them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from sqlalchemy import inspect as sa_inspect, select, text

PASSWORD = "password-1"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
PUBLIC_PREFIXES = ("/api/v1/public/", "/portal/", "/widget/", "/hooks/", "/account/", "/login", "/logout",
                   "/api/v1/security/", "/health", "/metrics", "/static/", "/appbuilder/", "/lang/")
DENIED = {400, 401, 403, 404, 405, 422}
# Arguments that are not ids: a valid value so the route's own logic runs.
PLAIN_ARGS = {"what": "retry", "channel": "email", "language": "en", "job_id": "no-such-job"}
SEQUENCE_BASE = {"xa": 1_000_000, "xb": 2_000_000, "ya": 3_000_000}
USER_COLUMNS = "id, username, email, active, password, session_generation"


def _token(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def _setup(slug: str, row: str, extra: int) -> dict:
    """A business; `extra` more rows in every table than a business with extra=0, so those ids exist only here."""
    days = ("mon", "tue", "wed", "thu", "fri")
    staff = []
    for i in range(1 + extra):
        staff.append({
            "key": f"s{i}", "name": f"{row} Staff {i}", "email": f"{row}.s{i}@example.org", "services": ["visit"],
            "locations": ["main"], "hours": [{"location": "main", "weekday": d, "start": "09:00", "end": "17:00"} for d in days],
            "breaks": [{"weekday": "mon", "start": "12:00", "end": "12:30"}],
            "time_off": [{"start": f"2030-02-0{i + 1}T00:00:00Z", "end": f"2030-02-0{i + 2}T00:00:00Z", "reason": f"{row} off"}],
            "overrides": [{"location": "main", "date": f"2030-03-0{i + 1}", "intervals": [["10:00", "12:00"]]}],
        })
    return {
        "version": 1,
        "tenant": {"slug": slug, "name": f"{row} Business", "timezone": "Europe/Berlin", "currency": "EUR"},
        "locations": [{"key": "main", "name": f"{row} Main", "timezone": "Europe/Berlin", "closures": ["2030-12-24"],
                       "hours": {d: [["08:00", "18:00"]] for d in days}}]
        + [{"key": f"x{i}", "name": f"{row} Extra {i}", "timezone": "Europe/Berlin", "closures": ["2030-12-25"]}
           for i in range(extra)],
        "categories": [{"key": f"c{i}", "name": f"{row} Cat {i}"} for i in range(1 + extra)],
        "services": [{"key": "visit", "name": f"{row} Visit", "duration_min": 30, "category": "c0"}]
        + [{"key": f"v{i}", "name": f"{row} V{i}", "duration_min": 30} for i in range(extra)],
        "staff": staff,
        "appointments": [
            {"service": "visit", "staff": f"s{i % (1 + extra)}", "location": "main", "start": f"2030-01-07T{9 + i:02d}:00:00Z",
             "customer": {"name": f"{row} Cust {i}", "email": f"{row}.c{i}@example.org"}}
            for i in range(1 + extra)
        ],
    }


@dataclass
class World:
    agencies: dict          # "X"/"Y" -> (id, slug)
    tenants: dict           # "xa"/"xb"/"ya" -> dict(id, slug, schema, agency)
    users: dict = field(default_factory=dict)
    keys: dict = field(default_factory=dict)


def _extra_rows(session, row: str, copies: int) -> None:
    from app.models import notifications as nm
    from app.models import tenant as tm
    from app.models import widgets as wm

    customers = list(session.scalars(select(tm.Customer).order_by(tm.Customer.id)))
    appointments = list(session.scalars(select(tm.Appointment)))
    for i in range(copies):
        session.add(wm.Widget(name=f"{row} widget {i}"))
        session.add(wm.FormField(key=f"q{i}", label=f"{row} question {i}"))
        session.add(wm.ConsentText(kind="terms", version=i + 1, body=f"{row} terms {i}"))
        session.add(wm.ErasureRequest(customer_id=customers[i % len(customers)].id, email=f"{row}.e{i}@example.org"))
        session.add(nm.NotificationDelivery(appointment_id=appointments[i % len(appointments)].id, kind="confirmation",
                                            channel="email", recipient=f"{row}.n{i}@example.org", status="failed"))
    session.flush()


def _tenant_status(engine, tenant_id):
    with engine.connect() as conn:
        return conn.execute(text("SELECT status FROM public.tenant WHERE id = :i"), {"i": tenant_id}).scalar()


@pytest.fixture(scope="module")
def world(app):
    from app.extensions import db
    from app.models import tenant as tm
    from app.models.public import ROLE_CLIENT_ADMIN, Agency, Tenant
    from app.security import Scope
    from app.services.invitations import Target, invite
    from app.services.people import create_api_key, create_user_with_role
    from app.services.setup_io import import_setup
    from app.tenancy import tenant_session
    from tenants.provisioning import create_agency

    w = World(agencies={}, tenants={})
    with app.app_context():
        for key in ("X", "Y"):
            slug = _token("wag")
            create_agency(db.session, slug, f"Agency {slug}")
            db.session.flush()
            w.agencies[key] = (db.session.scalar(select(Agency.id).where(Agency.slug == slug)), slug)
        db.session.commit()
        for key, agency, extra in (("xa", "X", 0), ("xb", "X", 2), ("ya", "Y", 2)):
            slug, row = _token(f"wm{key}_"), _token("r")
            # First the business with one location; then, after its sequences moved to their own
            # range, everything else: no id of one business's rows is an id in another's.
            first = _setup(slug, row, 0)
            first = {"version": 1, "tenant": first["tenant"], "locations": first["locations"][:1]}
            import_setup(db.engine, first, w.agencies[agency][1])
            tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
            w.tenants[key] = {"id": tenant.id, "slug": slug, "schema": tenant.schema, "agency": agency}
            with db.engine.begin() as conn:
                conn.execute(text(
                    "SELECT setval(c.oid, :base) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind = 'S' AND n.nspname = :schema"),
                    {"base": SEQUENCE_BASE[key], "schema": tenant.schema})
            import_setup(db.engine, _setup(slug, row, extra), w.agencies[agency][1])
            status = _tenant_status(db.engine, tenant.id)
            assert status == "active", status
            with tenant_session(db.engine, slug) as (session, _):
                _extra_rows(session, row, 1 + extra)
                w.tenants[key]["staff"] = session.scalar(select(tm.Staff.id).where(tm.Staff.key == "s0"))
            _, w.keys[key] = create_api_key(db.session, tenant, f"{row} key", scopes="read write")
            scope = Scope(tenant_roles={tenant.id: {ROLE_CLIENT_ADMIN}})
            invite(db.session, scope, None, f"{row}.inv@example.org", Target(ROLE_CLIENT_ADMIN, tenant_id=tenant.id))
            db.session.commit()

        def user(role, **scope):
            name = _token("wx")
            create_user_with_role(db.session, username=name, email=f"{name}@example.org", password=PASSWORD, role=role, **scope)
            return name

        t, a = w.tenants, w.agencies
        w.users = {
            "Platform Admin": user("Platform Admin"),
            "Agency Owner X": user("Agency Owner", agency_slug=a["X"][1]),
            "Agency Owner Y": user("Agency Owner", agency_slug=a["Y"][1]),
            "Client Admin xa": user("Client Admin", tenant_slug=t["xa"]["slug"]),
            "Client Admin ya": user("Client Admin", tenant_slug=t["ya"]["slug"]),
            "Staff xa": user("Staff", tenant_slug=t["xa"]["slug"], staff_id=t["xa"]["staff"]),
            "Auditor xa": user("Auditor", tenant_slug=t["xa"]["slug"]),
            "Agency Auditor X": user("Auditor", agency_slug=a["X"][1]),
        }
        # Members of each business, so users outside a scope exist to be (not) touched.
        for key in ("xb", "ya"):
            w.users[f"member {key}"] = user("Client Admin", tenant_slug=t[key]["slug"])
        db.session.commit()
    return w


@dataclass
class Principal:
    name: str
    home: str                  # business worked in
    out_tenants: tuple         # businesses outside the scope (public rows)
    out_agencies: tuple        # agencies outside the scope
    api_key: bool = False

    @property
    def other_schemas(self) -> tuple:
        return tuple(k for k in ("xa", "xb", "ya") if k != self.home)


PRINCIPALS = [
    Principal("Platform Admin", "ya", (), ()),
    Principal("Agency Owner X", "xa", ("ya",), ("Y",)),
    Principal("Agency Owner Y", "ya", ("xa", "xb"), ("X",)),
    Principal("Client Admin xa", "xa", ("xb", "ya"), ("X", "Y")),
    Principal("Client Admin ya", "ya", ("xa", "xb"), ("X", "Y")),
    Principal("Staff xa", "xa", ("xb", "ya"), ("X", "Y")),
    Principal("Auditor xa", "xa", ("xb", "ya"), ("X", "Y")),
    Principal("Agency Auditor X", "xb", ("ya",), ("Y",)),
    Principal("API key xa", "xa", ("xb", "ya"), ("X", "Y"), api_key=True),
    Principal("API key ya", "ya", ("xa", "xb"), ("X", "Y"), api_key=True),
]


# ------------------------------------------------------------------ database dump

class Dumper:
    """One query: an md5 of every table of the other businesses' schemas and of the public rows outside the scope."""

    def __init__(self, engine, world: World, who: Principal):
        self.engine = engine
        t_ids = [world.tenants[k]["id"] for k in who.out_tenants]
        a_ids = [world.agencies[k][0] for k in who.out_agencies]
        parts = []
        with engine.connect() as conn:
            for key in who.other_schemas:
                schema = world.tenants[key]["schema"]
                for (table,) in conn.execute(text(
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = :s AND table_type = 'BASE TABLE'"
                        " ORDER BY 1"), {"s": schema}):
                    parts.append((f"{schema}.{table}", f'SELECT * FROM "{schema}"."{table}"'))
            if t_ids or a_ids:
                columns = {}
                for table, column in conn.execute(text(
                        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'")):
                    columns.setdefault(table, set()).add(column)
                tl, al = _sql_list(t_ids), _sql_list(a_ids)
                for table, cols in sorted(columns.items()):
                    if table == "tenant":
                        where = f"id IN {tl}"
                    elif table == "agency":
                        where = f"id IN {al}"
                    elif table == "ab_user":
                        parts.append(("public.ab_user", f"SELECT {USER_COLUMNS} FROM public.ab_user WHERE id IN "
                                      f"(SELECT user_id FROM public.membership WHERE tenant_id IN {tl} OR agency_id IN {al})"))
                        continue
                    elif "tenant_id" in cols and "agency_id" in cols:
                        where = f"tenant_id IN {tl} OR agency_id IN {al}"
                    elif "tenant_id" in cols:
                        where = f"tenant_id IN {tl}"
                    elif "agency_id" in cols:
                        where = f"agency_id IN {al}"
                    else:
                        continue
                    volatile = {"last_used_at"} & cols  # the key in use is the principal's own
                    select_list = ", ".join(sorted(f'"{c}"' for c in cols - volatile))
                    parts.append((f"public.{table}", f'SELECT {select_list} FROM public."{table}" WHERE {where}'))
        self.sql = " UNION ALL ".join(
            f"SELECT '{name}' AS t, count(*) AS n, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS h "
            f"FROM ({query}) x" for name, query in parts
        )
        assert parts

    def dump(self) -> dict:
        with self.engine.connect() as conn:
            return {row.t: (row.n, row.h) for row in conn.execute(text(self.sql))}


def _sql_list(ids) -> str:
    return "(" + ", ".join(str(int(i)) for i in ids) + ")" if ids else "(NULL)"


# ------------------------------------------------------------------ foreign ids

class Foreign:
    """Ids outside a principal's scope, per model."""

    def __init__(self, engine, world: World, who: Principal):
        self.engine, self.world, self.who = engine, world, who
        self._cache: dict = {}

    def ids(self, model, limit: int = 2) -> list:
        if model in self._cache:
            return self._cache[model]
        from app.models.base import PublicModel

        table = model.__table__
        pk = list(table.primary_key.columns)[0].name
        w, who = self.world, self.who
        with self.engine.connect() as conn:
            if not issubclass(model, PublicModel):
                home = w.tenants[who.home]["schema"]
                mine = {r[0] for r in conn.execute(text(f'SELECT "{pk}" FROM "{home}"."{table.name}"'))}
                found = []
                for key in who.other_schemas:
                    schema = w.tenants[key]["schema"]
                    found += [r[0] for r in conn.execute(text(f'SELECT "{pk}" FROM "{schema}"."{table.name}" ORDER BY 1 DESC'))
                              if r[0] not in mine]
            else:
                t_ids = [w.tenants[k]["id"] for k in who.out_tenants]
                a_ids = [w.agencies[k][0] for k in who.out_agencies]
                cols = set(table.columns.keys())
                tl, al = _sql_list(t_ids), _sql_list(a_ids)
                if table.name == "tenant":
                    where = f"id IN {tl}"
                elif table.name == "agency":
                    where = f"id IN {al}"
                elif table.name == "ab_user":
                    where = f"id IN (SELECT user_id FROM membership WHERE tenant_id IN {tl} OR agency_id IN {al})"
                elif {"tenant_id", "agency_id"} <= cols:
                    where = f"tenant_id IN {tl} OR agency_id IN {al}"
                elif "tenant_id" in cols:
                    where = f"tenant_id IN {tl}"
                elif "agency_id" in cols:
                    where = f"agency_id IN {al}"
                else:
                    where = "false"
                found = [r[0] for r in conn.execute(text(f'SELECT "{pk}" FROM public."{table.name}" WHERE {where} ORDER BY 1 DESC'))]
        # Spread over the other businesses: the last of each half.
        picked = list(dict.fromkeys(found[:1] + found[-1:]))[:limit] if found else []
        self._cache[model] = [str(i) for i in picked]
        return self._cache[model]


def _arg_models():
    from flask_appbuilder.security.sqla.models import User

    from app.models import notifications as nm
    from app.models import tenant as tm
    from app.models import widgets as wm
    from app.models.public import AccessToken, Tenant

    return {
        "token_id": AccessToken, "delivery_id": nm.NotificationDelivery, "service_id": tm.Service,
        "staff_id": tm.Staff, "appointment_id": tm.Appointment, "user_id": User, "tenant_id": Tenant,
        "location_id": tm.Location, "customer_id": tm.Customer, "widget_id": wm.Widget,
        # Custom views' <pk> routes (the view has no datamodel)
        "WidgetBuilderView.pk": wm.Widget, "TenantView.pk": Tenant, "CustomDomainView.pk": Tenant,
    }


def _reference_body(foreign: Foreign, world: World, who: Principal) -> dict:
    """A body whose every reference points outside the scope."""
    from app.models import tenant as tm
    from app.models.public import Agency, Tenant

    def first(model):
        ids = foreign.ids(model)
        return ids[0] if ids else "999999"

    body = {
        "staff": first(tm.Staff), "staff_id": first(tm.Staff), "service": first(tm.Service), "service_id": first(tm.Service),
        "location": first(tm.Location), "location_id": first(tm.Location), "customer": first(tm.Customer),
        "customer_id": first(tm.Customer), "category": first(tm.Category), "appointment_id": first(tm.Appointment),
        "tenant": first(Tenant), "tenant_id": first(Tenant), "agency": first(Agency), "agency_id": first(Agency),
        "rowid": first(tm.Location), "name": "outsider", "key": "outsider", "email": "outsider@example.org",
        "username": world.users.get("member ya" if who.home != "ya" else "member xb"),
        "role": "Client Admin", "scope": f"tenant:{first(Tenant)}", "slug": "outsider_x",
    }
    other = [k for k in ("xa", "xb", "ya") if k in who.out_tenants]
    if other:
        body["tenant_slug"] = world.tenants[other[0]]["slug"]
    return body


# ------------------------------------------------------------------ requests

@dataclass
class Case:
    method: str
    url: str
    form: dict | None = None
    json: dict | None = None
    expect_denied: bool = True
    route: str = ""


def _cases(app, foreign: Foreign, world: World, who: Principal) -> tuple[list[Case], list[str], set]:
    views = {type(v).__name__: v for v in app.appbuilder.baseviews}
    arg_models = _arg_models()
    adapter = app.url_map.bind("localhost")
    cases, skipped, rules = [], [], set()
    ref = _reference_body(foreign, world, who)
    for rule in app.url_map.iter_rules():
        methods = rule.methods & WRITE_METHODS
        if not methods or rule.rule.startswith(PUBLIC_PREFIXES):
            continue
        if who.api_key and not rule.rule.startswith("/api/v1/"):
            continue  # API keys on other routes: test_sec_api_keys
        rules.add(rule.rule)
        owner = rule.endpoint.split(".")[0]
        view = views.get(owner)
        datamodel = getattr(view, "datamodel", None)
        args = sorted(rule.arguments - set(rule.defaults or {}))
        values: dict[str, list[str]] = {}
        id_route = False
        for arg in args:
            if arg in PLAIN_ARGS:
                values[arg] = [PLAIN_ARGS[arg]]
            elif arg == "event":
                from app.notifications.templating import EVENTS

                values[arg] = [sorted(EVENTS)[0]]
            elif arg == "name" and view is not None:
                values[arg] = sorted(getattr(view, "actions", {}) or {}) or ["none"]
            elif arg == "slug":
                id_route = True
                values[arg] = [world.tenants[k]["slug"] for k in who.out_tenants]
            elif arg == "pk" and datamodel is not None:
                id_route = True
                values[arg] = foreign.ids(datamodel.obj)
            elif f"{owner}.{arg}" in arg_models or arg in arg_models or arg.endswith("_id"):
                id_route = True
                model = arg_models.get(f"{owner}.{arg}") or arg_models.get(arg)
                values[arg] = foreign.ids(model) if model is not None else ["999999"]
            else:
                values[arg] = ["x"]
        if any(not v for v in values.values()):
            skipped.append(f"{rule.rule} (no foreign row)")
            continue
        combos = [{}]
        for arg in args:
            combos = [{**c, arg: v} for c in combos for v in values[arg]]
        for combo in combos:
            url = adapter.build(rule.endpoint, combo, method=sorted(methods)[0])
            for method in sorted(methods):
                is_api = rule.rule.startswith("/api/")
                if rule.endpoint.endswith(".action_post") and view is not None:
                    actions = sorted(getattr(view, "actions", {}) or {}) or ["none"]
                    model_ids = foreign.ids(datamodel.obj) if datamodel is not None else []
                    for name in actions:
                        for rowids in ([i] for i in model_ids):   # single rows
                            cases.append(Case(method, url, form={"action": name, "rowid": rowids}, route=rule.rule))
                        if len(model_ids) > 1:                      # bulk
                            cases.append(Case(method, url, form={"action": name, "rowid": model_ids}, route=rule.rule))
                        if not model_ids:
                            skipped.append(f"{rule.rule} {name} (no foreign row)")
                    continue
                if is_api:
                    cases.append(Case(method, url, json=None if method == "DELETE" else dict(ref),
                                      expect_denied=id_route, route=rule.rule))
                else:
                    cases.append(Case(method, url, form=dict(ref), expect_denied=id_route, route=rule.rule))
    return cases, skipped, rules


def _client(app, world: World, who: Principal):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"10.88.{PRINCIPALS.index(who)}.1"
    if who.api_key:
        return client, {"Authorization": f"Bearer {world.keys[who.home]}"}
    response = client.post("/login/", data={"username": world.users[who.name], "password": PASSWORD})
    assert response.status_code == 302 and "/login" not in response.headers["Location"], who.name
    assert client.post(f"/switch/{world.tenants[who.home]['slug']}").status_code == 302
    return client, {}


def _denied(response) -> bool:
    if response.status_code in DENIED:
        return True
    # FAB answers a missing permission with a redirect to the log-in page (its own
    # security views, to "." with an "access denied" message).
    location = response.headers.get("Location", "")
    return response.status_code == 302 and ("/login" in location or location in (".", "./"))


@pytest.mark.parametrize("who", PRINCIPALS, ids=[p.name for p in PRINCIPALS])
def test_no_write_reaches_another_business(app, world, who):
    from app.extensions import db

    with app.app_context():
        engine = db.engine
        foreign = Foreign(engine, world, who)
        dumper = Dumper(engine, world, who)
        cases, skipped, rules = _cases(app, foreign, world, who)
        # The lists really come from the URL map (all write routes, every view's actions).
        assert len(rules) >= (20 if who.api_key else 150), sorted(rules)
        assert len(cases) >= (20 if who.api_key else 60 if who.name == "Platform Admin" else 120), len(cases)
    # Requests outside the test's app context: each gets its own, as in production (a
    # request inside an outer context reuses that context's g and session).
    client, headers = _client(app, world, who)
    before = dumper.dump()
    problems = []
    by_route: dict[str, list[Case]] = {}
    # Id routes first: a route without an id may add rows at home, whose ids then
    # could equal the "foreign" ids picked at the start.
    for case in sorted(cases, key=lambda c: not c.expect_denied):
        by_route.setdefault(case.route, []).append(case)
    for route, route_cases in by_route.items():
        if not who.api_key:
            # Back to the home business before each route (a route may legitimately switch).
            home = client.post(f"/switch/{world.tenants[who.home]['slug']}")
            assert home.status_code == 302, (route, home.status_code)
            with client.session_transaction() as sess:
                # A browser shows (and so drops) the flashed messages on the next page; this
                # client never renders one, and hundreds of them would outgrow the cookie.
                sess.pop("_flashes", None)
                assert sess.get("tenant_slug") == world.tenants[who.home]["slug"], route
        for case in route_cases:
            response = client.open(case.url, method=case.method, data=case.form, json=case.json, headers=headers)
            if response.status_code >= 500:
                problems.append(f"{case.method} {case.url} {case.form or case.json}: {response.status_code}")
            elif case.expect_denied and not _denied(response):
                problems.append(f"{case.method} {case.url} {case.form or ''}: {response.status_code} "
                                f"{response.headers.get('Location', '')}")
            if who.api_key:
                assert "Set-Cookie" not in response.headers, case.url
        after = dumper.dump()
        if after != before:
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            problems.append(f"{route}: rows outside the scope changed: {changed}")
            before = after
    assert not problems, "\n".join(problems)
