"""Business operations of the portal app: the single write path for pages, API, admin and commands."""
