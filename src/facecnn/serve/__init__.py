"""The REST service: facecnn serve."""
