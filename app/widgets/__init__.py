"""Panels of the main window. Each widget only draws what it is given and emits user intents."""
