"""HTTP layer: thin handlers that parse, call `store`/`core`, and answer."""
