"""Zero-shot image → EXIF ranking: score candidate EXIF texts by their similarity to an image's patches.

A candidate's score is the mean, over the image's patches, of the cosine similarity between the
patch embedding and the candidate's text embedding (both L2-normalised): the quantity the
contrastive loss was trained to make large for a patch and its own photo's EXIF.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from exiflang.probes.features import l2_normalise

from ..errors import ExiflangError
from ..imageio import read_npy
from ..jsonfile import parse_json


class CandidateError(ExiflangError):
    """A candidate list could not be read; the message names the file and the cause."""


@dataclass
class Candidate:
    """One EXIF description to score against an image."""

    text: str
    make: str = ""
    model: str = ""
    n_photos: int = 0  # photos of this camera in the source collection (0 when unknown)
    source: str = ""  # e.g. the representative record's relpath, or the substituted tag value


@dataclass
class RankedCandidate:
    """A candidate with its score and rank (1 = best)."""

    rank: int
    score: float
    candidate: Candidate

    def to_dict(self) -> dict:
        """JSON-ready dict: rank, score, make, model, text, n_photos, source."""
        return {"rank": self.rank, "score": round(float(self.score), 6), **asdict(self.candidate)}


AUTO_CACHE = "auto"  # encode_texts' default: $EXIFLANG_CACHE/text_embeddings (see `exiflang.paths.cache_root`)


def text_cache_folder(model, cache_dir: "Path | str | None" = AUTO_CACHE) -> Path | None:
    """The folder of `model`'s cached text embeddings, or None when caching is off or the model has no content id.

    Keyed by the model id (architecture name + digest of the saved weights) and the text tower's settings;
    an unsaved model ("tiny-untrained") has no stable id, so its embeddings are never cached.
    """
    import hashlib

    model_id = str(getattr(model, "model_id", "") or "")
    if cache_dir is None or not model_id or model_id.endswith("-untrained"):
        return None
    if cache_dir == AUTO_CACHE:
        from ..paths import cache_root

        cache_dir = cache_root() / "text_embeddings"
    text = getattr(model, "text", None)
    tower = json.dumps(getattr(text, "cfg", None), sort_keys=True, default=str)
    # The id proves the weights (models.checked_model_id); a trained vocabulary is not in them, so it joins the key.
    tokenizer = getattr(text, "tokenizer", None)
    if getattr(getattr(text, "cfg", None), "get", lambda *_: None)("tokenizer") == "trained" and tokenizer is not None:
        tower += tokenizer.to_json()
    return Path(cache_dir) / f"{model_id}-{hashlib.sha256(tower.encode()).hexdigest()[:8]}"


def _read_cached(path: Path, dim: int) -> np.ndarray | None:
    """One cached embedding, or None when absent; a damaged entry is named on stderr and recomputed."""
    if not path.is_file():
        return None
    vec, problem = read_npy(path)
    if vec is not None:
        if vec.shape == (dim,) and vec.dtype == np.float32 and np.isfinite(vec).all():
            return vec
        problem = f"shape {vec.shape} {vec.dtype}"
    import sys

    print(f"exiflang: damaged text-embedding cache entry {path} ({problem}); recomputing it", file=sys.stderr)
    return None


def encode_texts(model, texts: Sequence[str], batch_size: int = 64, device: str = "cpu",
                 cache_dir: "Path | str | None" = None, progress: bool = False) -> np.ndarray:
    """L2-normalised text embeddings [T, D] (float32) of a list of EXIF texts, read from / added to a cache.

    `cache_dir`: None (no cache), AUTO_CACHE or a folder; entries are one .npy per text (sha256 of the text).
    """
    import hashlib

    from ..imageio import atomic_write_npy

    folder = text_cache_folder(model, cache_dir)
    dim = int(model.embed_dim)
    paths = [folder / f"{hashlib.sha256(t.encode()).hexdigest()[:32]}.npy" if folder else None for t in texts]
    found = [_read_cached(p, dim) if p is not None else None for p in paths]
    todo = [i for i, vec in enumerate(found) if vec is None]
    fresh = _encode_batches(model, [texts[i] for i in todo], batch_size, progress)
    for i, vec in zip(todo, fresh):
        found[i] = vec
        if paths[i] is not None:
            atomic_write_npy(paths[i], vec)
    if not found:
        return np.zeros((0, dim), dtype=np.float32)
    return np.stack(found).astype(np.float32)


def _encode_batches(model, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
    """Run the text tower over `texts` in batches (a progress bar on stderr with `progress`)."""
    import sys

    import torch
    from tqdm import tqdm

    outs = []
    starts = range(0, len(texts), batch_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc="text embeddings", unit="batch", file=sys.stderr,
                          disable=not progress or len(starts) < 2):
            outs.append(model.encode_text(list(texts[start:start + batch_size])).float().cpu().numpy())
    if not outs:
        return np.zeros((0, int(model.embed_dim)), dtype=np.float32)
    return l2_normalise(np.concatenate(outs, axis=0)).astype(np.float32)


def patch_text_scores(patch_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """Mean cosine similarity [T] of each text to the patches [K, D] (both normalised)."""
    return (l2_normalise(patch_emb) @ l2_normalise(text_emb).T).mean(axis=0)


def rank_candidates(patch_emb: np.ndarray, candidates: Sequence[Candidate], model, device: str = "cpu",
                    cache_dir: "Path | str | None" = AUTO_CACHE, progress: bool = False) -> list[RankedCandidate]:
    """Score every candidate text against the patches and sort best first (candidate embeddings cached)."""
    if not candidates:
        raise CandidateError("no candidates to rank")
    emb = encode_texts(model, [c.text for c in candidates], device=device, cache_dir=cache_dir, progress=progress)
    scores = patch_text_scores(patch_emb, emb)
    order = np.argsort(-scores, kind="stable")
    return [RankedCandidate(r + 1, float(scores[i]), candidates[i]) for r, i in enumerate(order)]


def representative_record(records: Sequence[dict]) -> dict:
    """The record whose tag values agree most with the camera's most common value of each tag.

    A camera's photos differ in exposure, focal length, etc.; the most typical one stands for the camera.
    Ties go to the first record by relpath, so the choice is deterministic.
    """
    modes: dict[str, str] = {}
    counts: dict[str, Counter] = defaultdict(Counter)
    for rec in records:
        for tag, value in (rec.get("tags") or {}).items():
            counts[tag][value] += 1
    for tag, counter in counts.items():
        modes[tag] = counter.most_common(1)[0][0]

    def agreement(rec: dict) -> int:
        return sum(1 for tag, value in (rec.get("tags") or {}).items() if modes.get(tag) == value)

    ordered = sorted(records, key=lambda r: str(r.get("relpath", r.get("path", ""))))
    return max(ordered, key=agreement)  # max keeps the first of equal scores


def camera_key(record: dict) -> tuple[str, str]:
    """(Make, Model) of a record, whitespace-trimmed."""
    return (str(record.get("make") or "").strip(), str(record.get("model") or "").strip())


def camera_candidates(records: Iterable[dict], text_of=None) -> list[Candidate]:
    """One candidate per distinct (Make, Model), its text from the camera's representative record.

    `text_of(record)` renders a record's text; by default the record's stored `text` field.
    """
    by_camera: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for rec in records:
        by_camera[camera_key(rec)].append(rec)
    out = []
    for (make, model_name), recs in sorted(by_camera.items()):
        rep = representative_record(recs)
        text = text_of(rep) if text_of else rep.get("text")
        if not text:
            continue
        out.append(Candidate(text=text, make=make, model=model_name, n_photos=len(recs),
                             source=str(rep.get("relpath", rep.get("path", "")))))
    return out


def tag_candidates(own_tags: dict[str, str], tag: str, values: Sequence[str], text_config=None) -> list[Candidate]:
    """The image's own EXIF with `tag` replaced by each of `values` in turn (other tags kept as context)."""
    from exiflang.exif import exif_to_text

    out = []
    for value in dict.fromkeys(values):  # de-duplicate, keep order
        tags = dict(own_tags)
        tags[tag] = value
        out.append(Candidate(text=exif_to_text(tags, text_config), make=tags.get("Make", ""),
                             model=tags.get("Model", ""), source=f"{tag}={value}"))
    return out


def load_candidates(path: str | Path, text_config=None) -> list[Candidate]:
    """Read candidates from an index folder (distinct cameras), a .json list, or a text file (one per line).

    JSON may be a list of strings or of objects with `text` and/or `tags` (a tag dict, rendered with
    `text_config`, so one file serves any text format) and optional `make`, `model`; or an object with
    such a list under `candidates` or `references`.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / "records.jsonl").is_file():
            raise CandidateError(f"{path}: a folder must be an exiflang index (records.jsonl missing)")
        from exiflang.data.index import load_records

        records = load_records(path)
        text_of = None
        if text_config is not None:
            from exiflang.exif import exif_to_text

            def text_of(rec: dict) -> str:
                return exif_to_text(rec.get("tags") or {}, text_config)
        cands = camera_candidates(records, text_of)
        if not cands:
            raise CandidateError(f"{path}: the index holds no photo with EXIF text")
        return cands
    if not path.is_file():
        raise CandidateError(f"{path}: no such file or index folder")
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CandidateError(f"{path}: cannot read ({exc})") from exc
    if path.suffix.lower() == ".json":
        return _candidates_from_json(raw, path, text_config)
    cands = [Candidate(text=line.strip()) for line in raw.splitlines() if line.strip()]
    if not cands:
        raise CandidateError(f"{path}: no candidate texts (expected one EXIF text per line)")
    return cands


def _candidates_from_json(raw: str, path: Path, text_config=None) -> list[Candidate]:
    """Parse the JSON forms accepted by `load_candidates`."""
    data = parse_json(raw, str(path), CandidateError)
    if isinstance(data, dict):
        data = data.get("candidates", data.get("references"))
    if not isinstance(data, list) or not data:
        raise CandidateError(f"{path}: expected a non-empty JSON list of texts or of objects with 'text'")
    out = []
    for i, item in enumerate(data):
        if isinstance(item, str):
            out.append(Candidate(text=item))
        elif isinstance(item, dict) and (isinstance(item.get("text"), str) or isinstance(item.get("tags"), dict)):
            text = item.get("text")
            if isinstance(item.get("tags"), dict) and (text_config is not None or not isinstance(text, str)):
                from exiflang.exif import exif_to_text

                text = exif_to_text({str(k): str(v) for k, v in item["tags"].items()}, text_config)
            out.append(Candidate(text=text, make=str(item.get("make", "")), model=str(item.get("model", "")),
                                 n_photos=int(item.get("n_photos", 0) or 0), source=str(item.get("source", ""))))
        else:
            raise CandidateError(f"{path}: entry {i} is neither a string nor an object with 'text' or 'tags'")
    return out


__all__ = [
    "CandidateError", "Candidate", "RankedCandidate", "encode_texts", "patch_text_scores", "rank_candidates",
    "representative_record", "camera_key", "camera_candidates", "tag_candidates", "load_candidates",
]
