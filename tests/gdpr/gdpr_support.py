"""Helpers of the GDPR tests (import as `from gdpr_support import ...`)."""

from __future__ import annotations


def book(client, slug, start="2027-01-11T08:00:00Z", name="Eve Example", email="eve@example.com", phone=None, **extra):
    body = {"service": "visit", "start": start, "timezone": "Europe/Berlin",
            "customer": {"name": name, "email": email, **({"phone": phone} if phone else {})}, **extra}
    response = client.post(f"/api/v1/public/{slug}/bookings", json=body, headers={"User-Agent": "pytest-agent/1"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()
