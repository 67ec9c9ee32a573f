"""MLproject entry points: build, evaluate, tune, promote. Each is a typed function with a thin CLI."""
