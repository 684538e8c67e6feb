"""What the routes do, as plain async functions: no request, no response, no FastAPI."""
