"""Request and response bodies of the gateway's routes, a module per feature."""
