"""MLproject entry points: build, evaluate, promote. Each is a typed function with a thin CLI."""
