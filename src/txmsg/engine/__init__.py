"""The dispatcher and the scheduler: they wire `core`, `store` and `channels` together."""
