"""Model zoo, training and evaluation. Never imports Qt."""
