"""Studies that combine or compare several trained runs."""
