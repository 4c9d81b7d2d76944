"""Tenant provisioning and per-schema migrations (public schema + one schema per client)."""
