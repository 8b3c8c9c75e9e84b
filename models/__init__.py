"""Model zoo, training and evaluation (the layer above core/, below analysis/). Never imports Qt."""
