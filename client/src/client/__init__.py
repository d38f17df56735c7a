"""GitTix client package."""
