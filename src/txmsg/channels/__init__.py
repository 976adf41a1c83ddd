"""Channel providers: how a rendered message leaves the engine (SMTP, Twilio)."""
