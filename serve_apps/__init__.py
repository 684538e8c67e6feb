"""Ray Serve applications (gateway, training orchestrator), the CLI and settings."""
