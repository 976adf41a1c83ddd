"""The roles of API keys: what a key may do (each route says which roles it admits)."""

ROLES = ("admin", "marketer", "trigger")
