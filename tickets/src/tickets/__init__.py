"""GitTix tickets package."""
