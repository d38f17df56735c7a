"""GitTix expiration package."""
