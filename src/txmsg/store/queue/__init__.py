"""The durable event queue: every statement of it, named once, and the write cycle.

- `enqueue`: new events in (with `idempotency`), the fresh ones leased straight away;
- `claims`: due events leased to a dispatcher, highest priority first;
- `outcomes`: what became of claimed events, applied only under their lease;
- `leases`: renewals, and the release of leases whose worker died;
- `housekeeping`: events expired in the queue, old idempotency keys;
- `changes`: status updates of queued events, as the status changes they make;
- `rows`: each statement's result columns and the typed row they become;
- `cycle`: the write funnel's transaction, from outcomes to fatigue reservations.

Functions return what changed; the callers write the side effects (report counts, webhook
calls) where they can be seen. Nothing is imported here, so that importing one module does
not import them all.
"""
