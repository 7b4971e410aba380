"""Handlers, one module per feature. Each parses input, asks a service, renders."""
