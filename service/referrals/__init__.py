"""Referrals to community offers (FHIR ServiceRequest + Task) with their handover."""
