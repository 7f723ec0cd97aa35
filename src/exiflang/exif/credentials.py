"""Content Credentials (C2PA manifests) read and validated with c2pa-python.

Newer cameras, phones and editors sign what they did to a picture into a C2PA manifest. `read_credentials`
says whether the file carries one, who signed it, which actions it records (created, edited, cropped, ...)
and whether it validates:

* ``trusted``: the signature and every hash check out and the signer chains to a trust anchor we were given;
* ``valid``: they check out, but the signer is not on any trust list we were given (anyone can make such a
  certificate: the claim is intact, the claimant is unverified);
* ``invalid``: a check failed, e.g. the picture was changed after signing (``assertion.dataHash.mismatch``).

Trust anchors (PEM certificates) come from the ``trust_anchors`` argument or the file named by
``$EXIFLANG_C2PA_TRUST_ANCHORS``; none are built in, and nothing is fetched from the network.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRUST_ENV = "EXIFLANG_C2PA_TRUST_ANCHORS"


@dataclass
class Credentials:
    """What a file's Content Credentials say."""

    state: str  # absent / trusted / valid / invalid / unreadable / unavailable
    signer: str = ""
    claim_generator: str = ""
    actions: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # failed validation codes with their explanation
    detail: str = ""  # why the state is unreadable / unavailable

    def to_evidence(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state}
        for key in ("signer", "claim_generator", "detail"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.actions:
            out["actions"] = self.actions
        if self.problems:
            out["problems"] = self.problems
        return out


def _trust_pem(trust_anchors: str | None) -> str | None:
    """The PEM text of the trust anchors: the argument, else the file named by $EXIFLANG_C2PA_TRUST_ANCHORS."""
    if trust_anchors:
        return trust_anchors
    path = os.environ.get(TRUST_ENV)
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None


def _actions(manifest: dict[str, Any]) -> list[str]:
    """The manifest's recorded actions, 'c2pa.edited (Photoshop)' style, in order."""
    out = []
    for assertion in manifest.get("assertions") or []:
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            name = str(action.get("action", "?"))
            agent = action.get("softwareAgent")
            agent = agent.get("name") if isinstance(agent, dict) else agent
            out.append(f"{name} ({agent})" if agent else name)
    return out


def _generator(manifest: dict[str, Any]) -> str:
    info = manifest.get("claim_generator_info") or []
    if info and isinstance(info[0], dict):
        return " ".join(str(info[0].get(k, "")) for k in ("name", "version")).strip()
    return str(manifest.get("claim_generator", ""))


def summarise(store: dict[str, Any], trusted: bool) -> Credentials:
    """Credentials from the Reader's JSON manifest store."""
    manifest = (store.get("manifests") or {}).get(store.get("active_manifest") or "", {})
    signature = manifest.get("signature_info") or {}
    statuses = store.get("validation_status") or []
    failures = [s for s in statuses if s.get("code") != "signingCredential.untrusted"]
    state = "invalid" if failures else ("trusted" if trusted and not statuses else "valid")
    signer = signature.get("common_name") or signature.get("issuer") or ""
    if signature.get("issuer") and signature.get("issuer") != signer:
        signer += f" (issued by {signature['issuer']})"
    return Credentials(state, signer, _generator(manifest), _actions(manifest),
                       [f"{s.get('code')}: {s.get('explanation', '')}".rstrip(": ") for s in failures])


def read_credentials(path: str | Path, trust_anchors: str | None = None) -> Credentials:
    """The file's Content Credentials (``state == 'absent'`` when it has none)."""
    try:
        import c2pa
    except ImportError as exc:
        return Credentials("unavailable", detail=f"c2pa-python is not installed ({exc}); run ./setup.sh")
    pem = _trust_pem(trust_anchors)
    try:
        context = None
        if pem:
            context = c2pa.Context.from_dict({"verify": {"verify_trust": True}, "trust": {"trust_anchors": pem}})
        with open(path, "rb") as stream:
            reader = c2pa.Reader(stream, context=context) if context else c2pa.Reader(stream)
            with reader:
                store = json.loads(reader.json())
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in type(exc).__name__ or "no JUMBF" in str(exc):
            return Credentials("absent")
        return Credentials("unreadable", detail=f"{type(exc).__name__.lstrip('_')}: {exc}"[:300])
    except (OSError, ValueError) as exc:
        return Credentials("unreadable", detail=str(exc)[:300])
    return summarise(store, trusted=pem is not None)


__all__ = ["Credentials", "TRUST_ENV", "read_credentials", "summarise"]
