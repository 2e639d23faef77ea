"""The model layer: every resource rule of the local cloud lives here, once."""
