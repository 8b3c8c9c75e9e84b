"""Where training datasets come from: a dataset cache folder (models.data.DatasetCache, written by
`msa-studio extract-dataset`) or an MMSA pickle (models.data_mmsa). Its own module so that
models.data and models.data_mmsa do not import each other."""
from __future__ import annotations

import os

from core.errors import MSAError
from core.feature_spec import FeatureSpec
from models.data import SPLITS, DatasetCache, MSADataset


def load_splits(data_dir: str | os.PathLike[str] | None = None, mmsa_pkl: str | os.PathLike[str] | None = None,
                preload: bool = True) -> tuple[FeatureSpec, dict[str, MSADataset]]:
    """(spec, {split: dataset}) from a feature cache directory or an MMSA pickle (exactly one).

    Only splits with samples are returned. The MMSA pickle is unpickled: see models/data_mmsa.py."""
    if (data_dir is None) == (mmsa_pkl is None):
        raise MSAError("give either a feature cache (--data) or an MMSA pickle (--mmsa-pkl)")
    if mmsa_pkl is not None:
        from models.data_mmsa import load_mmsa_pickle

        spec, splits = load_mmsa_pickle(mmsa_pkl)
        return spec, {k: v for k, v in splits.items() if len(v)}
    cache = DatasetCache(data_dir)  # type: ignore[arg-type]
    cache.require_finite_labels()
    out: dict[str, MSADataset] = {}
    for split in SPLITS:
        if cache.ids(split):
            out[split] = cache.dataset(split, preload=preload)
    return cache.spec, out
