"""Fakes for test authors: a fake SMTP server to assert on sent mail (plus a pytest plugin)."""

from txmsg.testing.smtp import FakeSMTPServer, ReceivedMessage

__all__ = ["FakeSMTPServer", "ReceivedMessage"]
