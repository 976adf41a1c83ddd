"""txmsg: a transactional messaging engine."""

__version__ = "0.1.0"
