"""Machine backends: what stands behind a server created through the API."""
