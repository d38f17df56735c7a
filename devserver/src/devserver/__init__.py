"""GitTix devserver package."""
