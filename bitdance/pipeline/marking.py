"""AI-generated marking: the IPTC digital source type in XMP, and an optional signed C2PA manifest.

Every image bitdance writes says, machine-readably, that it was made by a trained model:
- XMP (always): `Iptc4xmpExt:DigitalSourceType` =
  http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia, plus `xmp:CreatorTool`.
  PNG: an uncompressed iTXt chunk `XML:com.adobe.xmp`; JPEG: the APP1 XMP segment; WebP: the XMP chunk.
  The packet depends only on the recipe, so the same recipe still gives the same bytes (replay).
- C2PA (when a signing credential is configured): a manifest whose `c2pa.created` action carries the
  same digital source type, signed with `c2pa-python` (extra `marking`). Signing needs an X.509
  certificate chain and its private key; there is no offline way to get one a C2PA validator trusts,
  so it is opt-in:
      BITDANCE_C2PA_CERT=chain.pem BITDANCE_C2PA_KEY=key.pem   your own certificate (ES256 / PS256 / Ed25519)
      BITDANCE_C2PA=test                                       a self-signed chain made at run time whose
                                                               names say "BitDance TEST ... untrusted"
  A C2PA manifest holds a random instance id and signature, so signed files are not byte-reproducible;
  replay compares pixels and recipe there.
"""

from __future__ import annotations

import datetime
import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
XMP_KEY = "XML:com.adobe.xmp"  # PNG iTXt keyword defined by the XMP specification (part 3)
TEST_SIGNER_ORG = "BitDance TEST signer (self-signed, untrusted)"
MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_ALGS = {"es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"}


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def creator_tool(recipe: Mapping[str, Any]) -> str:
    """'bitdance 0.1.0 (model bitdance-mini)' from a recipe."""
    model = recipe.get("model")
    return f"bitdance {_version(recipe)}" + (f" (model {model})" if model else "")


def _version(recipe: Mapping[str, Any]) -> str:
    from .. import __version__  # noqa: PLC0415

    return str(recipe.get("bitdance_version") or __version__)


def xmp_packet(recipe: Mapping[str, Any]) -> bytes:
    """A deterministic XMP packet (UTF-8) marking the image as trained-algorithmic media."""
    xml = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        f'    Iptc4xmpExt:DigitalSourceType="{DIGITAL_SOURCE_TYPE}"\n'
        f'    xmp:CreatorTool="{_esc(creator_tool(recipe))}"/>\n'
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="r"?>'
    )
    return xml.encode("utf-8")


# ----------------------------------------------------------------------------- C2PA
@dataclass(frozen=True)
class C2paCredentials:
    """PEM certificate chain (signer first) + PEM private key; `test` marks a generated, untrusted chain."""

    cert_chain_pem: bytes
    key_pem: bytes
    alg: str = "es256"
    test: bool = False


def load_credentials(cert: str | Path, key: str | Path, alg: str = "es256") -> C2paCredentials:
    """Read a PEM chain and key; ValueError naming the file that cannot be read."""
    if alg.lower() not in _ALGS:
        raise ValueError(f"C2PA signing algorithm {alg!r} is not one of {', '.join(sorted(_ALGS))}")
    data = []
    for what, p in (("certificate chain", cert), ("private key", key)):
        try:
            data.append(Path(p).read_bytes())
        except OSError as e:
            raise ValueError(f"cannot read the C2PA {what} {p} ({e.strerror or e})") from None
    return C2paCredentials(data[0], data[1], alg.lower())


def test_credentials() -> C2paCredentials:
    """A throw-away CA + signer chain (ES256) made now; its names say it is a TEST, untrusted signer."""
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, TEST_SIGNER_ORG),
            ]
        )

    def usage(sign: bool) -> x509.KeyUsage:
        flags = dict.fromkeys(
            (
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "encipher_only",
                "decipher_only",
            ),
            False,
        )
        return x509.KeyUsage(digital_signature=sign, key_cert_sign=not sign, crl_sign=not sign, **flags)

    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    end = start + datetime.timedelta(days=365)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder(name("BitDance TEST CA"), name("BitDance TEST CA"), ca_key.public_key(), 1)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder(name("BitDance TEST signer"), ca.subject, key.public_key(), 2)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    chain = leaf.public_bytes(pem) + ca.public_bytes(pem)
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return C2paCredentials(chain, key_pem, "es256", test=True)


@lru_cache(maxsize=1)
def _env_credentials(cert: str | None, key: str | None, mode: str | None) -> C2paCredentials | None:
    if mode and mode.lower() == "test":
        return test_credentials()
    if mode and mode.lower() not in ("off", "0", ""):
        raise ValueError(f"BITDANCE_C2PA must be 'test' or 'off', got {mode!r}")
    if cert or key:
        if not (cert and key):
            raise ValueError("set both BITDANCE_C2PA_CERT and BITDANCE_C2PA_KEY (PEM files) to sign C2PA")
        return load_credentials(cert, key, os.environ.get("BITDANCE_C2PA_ALG", "es256"))
    return None


def configured_credentials() -> C2paCredentials | None:
    """The C2PA credentials the environment asks for, or None (XMP-only marking)."""
    env = os.environ
    return _env_credentials(
        env.get("BITDANCE_C2PA_CERT"), env.get("BITDANCE_C2PA_KEY"), env.get("BITDANCE_C2PA")
    )


def check_signing() -> None:
    """Validate the C2PA configuration up front (CLI: before the model loads); ValueError if unusable."""
    if configured_credentials() is None:
        return
    try:
        import c2pa  # noqa: F401, PLC0415
    except ModuleNotFoundError:
        raise ValueError(
            "BITDANCE_C2PA* asks for C2PA signing but c2pa-python is not installed: "
            "pip install 'bitdance[marking]' (or unset BITDANCE_C2PA, BITDANCE_C2PA_CERT, BITDANCE_C2PA_KEY)"
        ) from None


def c2pa_manifest(recipe: Mapping[str, Any], fmt: str) -> dict[str, Any]:
    """The manifest definition: one `c2pa.created` action of trained-algorithmic media by bitdance."""
    version = _version(recipe)
    return {
        "claim_generator_info": [{"name": "bitdance", "version": version}],
        "title": f"bitdance image.{fmt}",
        "format": MIME[fmt],
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": DIGITAL_SOURCE_TYPE,
                            "softwareAgent": {"name": creator_tool(recipe), "version": version},
                        }
                    ]
                },
            }
        ],
    }


def c2pa_sign(data: bytes, fmt: str, recipe: Mapping[str, Any], creds: C2paCredentials) -> bytes:
    """Embed a signed C2PA manifest into encoded image bytes (`fmt` png / jpeg / webp)."""
    try:
        import c2pa  # noqa: PLC0415
    except ModuleNotFoundError:
        raise ValueError(
            "C2PA signing was requested but c2pa-python is not installed: pip install 'bitdance[marking]'"
        ) from None
    alg = getattr(c2pa.C2paSigningAlg, creds.alg.upper())
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, creds.cert_chain_pem, creds.key_pem, None))
        settings = c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}}})
        builder = c2pa.Builder(json.dumps(c2pa_manifest(recipe, fmt)), context=c2pa.Context(settings))
        out = io.BytesIO()
        builder.sign(signer, MIME[fmt], io.BytesIO(data), out)
    except c2pa.C2paError as e:
        raise ValueError(f"C2PA signing failed ({e}); check BITDANCE_C2PA_CERT / BITDANCE_C2PA_KEY") from None
    return out.getvalue()
