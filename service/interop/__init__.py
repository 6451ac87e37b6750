"""Interoperability: Open Referral UK 3.0 directory feed and import, FHIR R4 (UK Core)
export and inbound referrals, and signed webhooks for referral status changes."""

from __future__ import annotations


def register(app, api) -> None:
    """Register the interop blueprints and the `import-oruk` command (listed in AREAS)."""
    from service.interop import fhir_api, oruk_api, webhooks_api

    oruk_api.register(app, api)
    fhir_api.register(app, api)
    webhooks_api.register(app, api)
