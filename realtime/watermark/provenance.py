"""C2PA content credentials on the files the filter writes (c2pa-python), and reading them back.

The signing key is made on first use: a local certificate authority and a signer certificate
(ECDSA P-256, ES256) in `$XDG_CONFIG_HOME/stablesync/c2pa/` (default `~/.config`), the private
keys readable by the user only. Nothing is sent anywhere: there is no time-stamp authority, so
a verifier sees a valid signature from an untrusted (self-made) certificate unless it is given
`ca.pem` as a trust anchor, which `read_credentials` does for this machine's own CA.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
CREDENTIAL_DESCRIPTION = "created by stablesync: AI-generated lip movement"


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "stablesync"


@dataclass(frozen=True)
class SigningKey:
    chain_pem: bytes  # signer certificate, then the CA's
    key_pem: bytes
    ca_pem: bytes


def _certificate(subject: str, issuer: str, public_key: Any, signing_key: Any, ca: bool) -> Any:
    """An X.509 certificate as C2PA wants it: a CA, or an end-entity signer with its issuer's key id."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "stablesync (local key)"),
            ]
        )

    now = datetime.datetime.now(datetime.UTC)
    usage = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement"), False
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
                **usage,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


def ensure_signing_key(folder: Path | None = None) -> SigningKey:
    """This user's signing key and certificates, made (once) if missing."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder = (folder or config_dir()) / "c2pa"
    chain_path, key_path, ca_path = folder / "signer-chain.pem", folder / "signer.key", folder / "ca.pem"
    if not (chain_path.is_file() and key_path.is_file() and ca_path.is_file()):
        folder.mkdir(parents=True, exist_ok=True)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        key = ec.generate_private_key(ec.SECP256R1())
        ca = _certificate("stablesync local CA", "stablesync local CA", ca_key.public_key(), ca_key, ca=True)
        cert = _certificate("stablesync signer", "stablesync local CA", key.public_key(), ca_key, ca=False)
        pem = serialization.Encoding.PEM
        ca_pem = ca.public_bytes(pem)
        key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_pem)
        chain_path.write_bytes(cert.public_bytes(pem) + ca_pem)
        ca_path.write_bytes(ca_pem)
    return SigningKey(chain_path.read_bytes(), key_path.read_bytes(), ca_path.read_bytes())


def manifest_definition(title: str, tool_version: str, run_id_hex: str) -> dict[str, Any]:
    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return {
        "claim_generator_info": [{"name": "stablesync", "version": tool_version}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "when": created,
                            "softwareAgent": f"stablesync {tool_version}",
                            "digitalSourceType": DIGITAL_SOURCE_TYPE,
                            "description": CREDENTIAL_DESCRIPTION,
                            "parameters": {"watermark_run_id": run_id_hex},
                        }
                    ]
                },
            }
        ],
    }


def sign_video(path: Path, tool_version: str, run_id_hex: str, key_folder: Path | None = None) -> None:
    """Adds a signed C2PA manifest to the mp4 at `path` (rewritten in place)."""
    import c2pa  # type: ignore[import-untyped]

    key = ensure_signing_key(key_folder)
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", key.chain_pem, key.key_pem, None))
    builder = c2pa.Builder(json.dumps(manifest_definition(path.name, tool_version, run_id_hex)))
    signed = path.with_name(path.stem + ".c2pa" + path.suffix)
    try:
        builder.sign_file(str(path), str(signed), signer)
        signed.replace(path)
    finally:
        signed.unlink(missing_ok=True)


@dataclass
class Credentials:
    state: str  # c2pa's validation state: Valid, Trusted or Invalid
    generator: str
    description: str
    trusted_here: bool  # signed under this machine's own stablesync CA
    problems: list[str] = field(default_factory=list)  # validation status codes other than "untrusted"


def read_credentials(path: Path, key_folder: Path | None = None) -> Credentials | None:
    """The file's C2PA manifest, verified; None when it has none (or c2pa is not installed)."""
    try:
        import c2pa
    except ImportError:
        return None
    ca_path = (key_folder or config_dir()) / "c2pa" / "ca.pem"
    settings = {"verify": {"verify_trust": True}}
    if ca_path.is_file():
        settings["trust"] = {"trust_anchors": ca_path.read_text()}  # type: ignore[dict-item]
    try:
        context = c2pa.Context.from_json(json.dumps(settings))
        with c2pa.Reader(str(path), context=context) as reader:
            report = json.loads(reader.json())
    except Exception as exc:  # c2pa's errors: no manifest, unsupported format
        if "ManifestNotFound" in type(exc).__name__ or "not found" in str(exc).lower():
            return None
        return Credentials(
            state="Invalid", generator="", description="", trusted_here=False, problems=[str(exc)]
        )
    manifest = report.get("manifests", {}).get(report.get("active_manifest", ""), {})
    generators = manifest.get("claim_generator_info") or [{}]
    generator = " ".join(str(generators[0].get(k, "")) for k in ("name", "version")).strip()
    description = ""
    for assertion in manifest.get("assertions", []):
        for action in assertion.get("data", {}).get("actions", []):
            description = description or str(action.get("description", ""))
    statuses = [str(s.get("code", "")) for s in report.get("validation_status") or []]
    return Credentials(
        state=str(report.get("validation_state", "Invalid")),
        generator=generator,
        description=description,
        trusted_here=str(report.get("validation_state")) == "Trusted",
        problems=[s for s in statuses if s != "signingCredential.untrusted"],
    )


def run_id_in(notes: Iterable[str]) -> str:
    """The run id a session noted in its telemetry ('watermark run id 1a2b3c4d'), or ''."""
    for note in notes:
        found = re.fullmatch(r"watermark run id ([0-9a-f]{8})", note)
        if found:
            return found.group(1)
    return ""


def sign_run_output(path: Path, notes: Iterable[str]) -> str:
    """Signs the mp4 a run wrote; a one-line outcome. Never raises: the file stays valid unsigned."""
    from stablesync import __version__

    if not path.is_file():
        return f"C2PA: not signed: {path} does not exist"
    try:
        sign_video(path, __version__, run_id_in(notes))
    except Exception as exc:  # c2pa missing or failing: the video itself is still fine
        return f"C2PA: {path} not signed: {type(exc).__name__}: {exc}"
    return f"C2PA: signed {path} with the key in {config_dir() / 'c2pa'}"
