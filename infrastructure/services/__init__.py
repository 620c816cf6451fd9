"""Business operations on infrastructure: the single write path for pages, API, admin and Celery."""
