"""The gateway's routes, a router per feature."""
