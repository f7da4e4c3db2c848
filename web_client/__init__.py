"""The browser client: static files served at ``/`` (no build step)."""
