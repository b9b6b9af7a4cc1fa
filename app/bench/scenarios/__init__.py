"""One module per measured area; each exposes ``measure(ctx) -> list[Figure]`` over a prepared database."""
