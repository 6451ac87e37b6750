"""Flags: specialist statutory pick-up needed (DESIGN §4 Flag, §5 rule 3)."""
