"""GitTix payments package."""
