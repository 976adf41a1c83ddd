"""Fakes for test authors: a fake SMTP server and a fake Twilio (plus a pytest plugin)."""

from txmsg.testing.smtp import FakeSMTPServer, ReceivedMessage
from txmsg.testing.twilio import FakeSms, FakeTwilio

__all__ = ["FakeSMTPServer", "FakeSms", "FakeTwilio", "ReceivedMessage"]
