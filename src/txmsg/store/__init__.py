"""Data access: SQLAlchemy tables and the queries on them. Knows `core`, nothing above."""
