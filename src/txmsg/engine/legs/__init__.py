"""One leg per channel: given a claimed event, its typed route and its target, send it and
say what became of it. The dispatcher checks the event's status first, then hands it to the
leg of its route's channel (base.py holds the protocol and what the legs share)."""
