"""The `txmsg` command's administration subcommands (keys, check, fakes) and its logging."""
