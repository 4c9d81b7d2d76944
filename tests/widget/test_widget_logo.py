"""The business's logo is uploaded in the widget builder (size and type checked), served by the app,
shown by the widget frame and the portal; the builder warns about a logo that may not load."""

from __future__ import annotations

import io
import struct
import zlib

from widget_support import tenant_rows


def _png(width=4, height=2) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _admin(app, client, slug):
    from app.extensions import db
    from app.services.people import create_user_with_role

    with app.app_context():
        create_user_with_role(db.session, username=f"lg_{slug}", email=f"lg_{slug}@x.org", password="password-1",
                              role="Client Admin", tenant_slug=slug)
        db.session.commit()
    assert client.post("/login/", data={"username": f"lg_{slug}", "password": "password-1"}).status_code == 302


def test_logo_is_uploaded_checked_served_and_shown_in_widget_and_portal(app, client, widget_tenant):
    slug, public_id = widget_tenant()
    _admin(app, client, slug)
    (pk,) = tenant_rows(app, slug, "SELECT id FROM widget WHERE public_id = :p", p=public_id)[0]
    page = client.get(f"/widgets/{pk}").get_data(as_text=True)
    assert "No logo yet" in page and 'enctype="multipart/form-data"' in page

    def upload(data, name="logo.png"):
        return client.post(f"/widgets/{pk}/logo", data={"logo_file": (io.BytesIO(data), name)},
                           content_type="multipart/form-data")

    svg = upload(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "logo.png")
    assert svg.status_code == 422 and "PNG, JPEG, GIF or WebP" in svg.get_data(as_text=True)
    big = upload(_png()[:8] + b"\x00" * (400 * 1024))
    assert big.status_code == 422 and "at most 300 KB" in big.get_data(as_text=True)
    assert tenant_rows(app, slug, "SELECT logo_url FROM widget WHERE id = :i", i=pk)[0][0] is None

    png = _png()
    assert upload(png).status_code == 302
    (url,) = tenant_rows(app, slug, "SELECT logo_url FROM widget WHERE id = :i", i=pk)[0]
    assert url.startswith(f"/widget/v1/{slug}/logo/") and url.endswith(".png")
    served = client.get(url)
    assert served.status_code == 200 and served.data == png and served.mimetype == "image/png"
    assert "immutable" in served.headers["Cache-Control"] and served.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get(url.replace(".png", ".gif")).status_code == 404
    assert "No logo yet" not in client.get(f"/widgets/{pk}").get_data(as_text=True)

    frame = client.get(f"/widget/v1/{slug}/{public_id}/frame", headers={"Accept-Encoding": "identity"}).get_data(as_text=True)
    assert f'src="{url}"' in frame
    # The portal carries the same branding (the business's logo).
    client.get("/logout/")
    portal = client.get(f"/portal/{slug}/").get_data(as_text=True)
    assert f'src="{url}"' in portal

    # A new upload replaces it; the old address is gone rather than served stale.
    client.post("/login/", data={"username": f"lg_{slug}", "password": "password-1"})
    assert upload(_png(8, 8)).status_code == 302
    assert client.get(url).status_code == 404


def test_builder_warns_about_a_plain_http_logo(app, client, widget_tenant):
    slug, public_id = widget_tenant()
    _admin(app, client, slug)
    (pk,) = tenant_rows(app, slug, "SELECT id FROM widget WHERE public_id = :p", p=public_id)[0]
    from app.extensions import db

    with app.app_context(), db.engine.begin() as conn:
        conn.exec_driver_sql(f'SET search_path TO "tenant_{slug}", public')
        conn.exec_driver_sql("UPDATE widget SET logo_url = 'http://cdn.example/logo.png'")
    assert "browsers block it inside the widget" in client.get(f"/widgets/{pk}").get_data(as_text=True)
