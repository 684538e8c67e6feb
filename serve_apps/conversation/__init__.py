"""The conversation protocol over WebSocket and its server-side handling."""
