"""The batch's summary beside ``index.html``: one row per image as CSV (for a spreadsheet) and JSON (for scripts).

Columns: file, status (ok / failed), probability of manipulation, verdict, score, flagged fraction, model,
seconds, the number of metadata warnings and their one-line texts, and the error of a file that failed.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any, Sequence

COLUMNS = ("file", "status", "probability", "verdict", "score", "flagged_fraction", "model", "seconds",
           "metadata_warnings", "metadata_notes", "error")


def summary_rows(entries: Sequence, show_paths: bool = True) -> list[dict[str, Any]]:
    """One dict per entry, most suspicious first, failed files last."""
    ok = sorted((e for e in entries if e.ok), key=lambda e: -(e.number("score") or float("-inf")))
    rows = []
    for e in [*ok, *(e for e in entries if not e.ok)]:
        warnings = [c for c in e.meta.get("provenance") or [] if isinstance(c, dict) and c.get("status") == "warning"]
        rows.append({
            "file": e.source if show_paths else e.name, "status": "ok" if e.ok else "failed",
            "probability": e.number("probability"), "verdict": e.meta.get("verdict"), "score": e.number("score"),
            "flagged_fraction": e.number("flagged_fraction"), "model": e.meta.get("model_id"),
            "seconds": e.number("seconds"), "metadata_warnings": len(warnings),
            "metadata_notes": "; ".join(f"{c.get('id')}: {c.get('text')}" for c in warnings), "error": e.error})
    return rows


def summary_csv(entries: Sequence, show_paths: bool = True) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in summary_rows(entries, show_paths):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def summary_json(entries: Sequence, show_paths: bool = True) -> str:
    return json.dumps({"images": summary_rows(entries, show_paths)}, indent=2) + "\n"


__all__ = ["COLUMNS", "summary_csv", "summary_json", "summary_rows"]
