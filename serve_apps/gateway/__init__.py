"""The gateway: the FastAPI + WebSocket ingress deployment."""
