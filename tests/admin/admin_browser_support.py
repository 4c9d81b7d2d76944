"""Helpers of the admin browser tests (import as `from admin_browser_support import ...`)."""

from __future__ import annotations


def sign_in(page, live: str, user: str, password: str = "password-1", business: str | None = None) -> None:
    page.goto(f"{live}/login/")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "/login" not in page.url, f"sign-in of {user} failed"
    if business:
        switch_business(page, live, business)


def switch_business(page, live: str, business: str) -> None:
    """Choose a business the way a user does: the switch page's button (a POST with the CSRF token)."""
    page.goto(f"{live}/switch/")
    page.click(f".list-group form[action$='/switch/{business}'] button")
    page.wait_for_load_state()
