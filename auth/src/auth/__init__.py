"""GitTix auth package."""
