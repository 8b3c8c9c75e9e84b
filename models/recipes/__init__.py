"""Recipes that rebuild the shipped default checkpoints from ../shared/data.

Entry point: ``python -m models.recipes.train_all --data ../shared/data --out assets --work WORKDIR``.
Stages (each caches its output under WORKDIR and is skipped when the cache is complete):
prepare_text / prepare_audio / prepare_visual -> unimodal -> compose -> train_all -> make_cards.
"""
