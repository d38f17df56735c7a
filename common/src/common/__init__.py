"""GitTix common package."""
