"""People (the service users), their About me and recorded needs, and their consents."""
