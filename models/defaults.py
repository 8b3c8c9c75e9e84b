"""The model the app, the CLI, batch and live mode use when none is named.

Chosen by measurement, not by fame: the model whose row of the held-out report
(`assets/model_cards/reports/heldout.json`, `python -m models.recipes.heldout_report`) meets the most
of its targets, ties broken by MOSI dev text-only MAE. README "Shipped weights" gives the table.
Import-light on purpose (no torch): argument parsers read it at start-up.
"""
DEFAULT_MODEL = "emt-dlfr"
