"""The HTTP layer: thin handlers over the model, the URL table in routes.py."""
