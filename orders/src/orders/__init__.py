"""GitTix orders package."""
