"""Photo collections: the index (records, rejects, tag frequencies) and, later, patches and shards.

    build_index(photo_dir, out_dir)  -> IndexSummary   (incremental)
    iter_records(index_dir)          -> one dict per accepted photo, streamed
    load_records(index_dir)          -> list of those dicts
"""
from __future__ import annotations

from .index import (IndexOptions, IndexReadError, IndexSummary, build_index, iter_records, iter_rejects,
                    load_records, load_tag_counts)

__all__ = ["IndexOptions", "IndexReadError", "IndexSummary", "build_index", "iter_records", "iter_rejects",
           "load_records", "load_tag_counts"]
