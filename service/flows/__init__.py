"""Alliance flows: aggregate figures, pictures and reports for contract managers."""
