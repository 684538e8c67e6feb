"""The training orchestrator: runs the agents around a trainee's conversation."""
