"""Pure domain logic: value types, rules, rendering, state machines. No I/O, no framework."""
