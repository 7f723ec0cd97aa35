"""Zero-shot splice detection and localisation from patch-embedding self-consistency.

Pipeline (Huh et al. 2018, as used by EXIF-as-Language): dense patch grid -> embeddings
(`grid.embed_patches`) -> all-pairs cosine similarity -> 4-D overlap vote into cells -> mean
shift to the dominant response map -> heatmap / score (`heatmap`), normalised-cut mask (`ncut`).
"""
from .api import DetectionResult, Detector, consistency_from_embeddings, detect, resolve_model
from .cells import CellMap, PatchGrid
from .grid import DEFAULT_PER_SIDE, ForensicsError, embed_patches, make_grid, model_grid
from .report import read_heatmap, write_report

__all__ = [
    "CellMap",
    "DEFAULT_PER_SIDE",
    "DetectionResult",
    "Detector",
    "ForensicsError",
    "PatchGrid",
    "consistency_from_embeddings",
    "detect",
    "embed_patches",
    "make_grid",
    "model_grid",
    "read_heatmap",
    "resolve_model",
    "write_report",
]
