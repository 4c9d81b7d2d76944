"""GDPR and audit: the registry of personal fields, the audit log, subject requests,
consents, retention, auditor reports and tenant offboarding (services; no views)."""
