"""Workflows: what a command does from start to end, driving the components (faces, video)
without being one of them; the CLI and the server call these."""
