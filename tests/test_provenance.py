"""Provenance and metadata checks (exiflang.exif.provenance) on real files: a CASIA splice, shared camera photos
re-saved, cropped, edited and given another picture's thumbnail, a file naming its editor in XMP, dates rewritten,
EXIF stripped, and Content Credentials signed here with a test certificate, then tampered with."""
from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from exiflang.exif.provenance import NOT_AVAILABLE, OK, WARNING, ProvenanceReader
from exiflang.imageio import load_rgb

SPLICE = "tampered/Sp_D_CND_A_sec0056_sec0015_0282.jpg"
IPHONE = "Apple_iPhone-6/Apple iPhone 6.jpg"  # a 1024x768 lossless centre crop of a 3264x2448 photo


@pytest.fixture(scope="module")
def reader():
    with ProvenanceReader() as r:
        yield r


def checks(reader, path) -> dict:
    return {c.id: c for c in reader.check(path)}


def test_casia_splice_names_photoshop_and_no_camera(reader, casia_dir):
    found = checks(reader, casia_dir / SPLICE)
    assert found["software"].status == WARNING
    assert "Adobe Photoshop CS2 Windows" in found["software"].text and "EXIF:Software" in found["software"].text
    assert found["software"].evidence["tags"]["XMP:CreatorTool"] == ["Adobe Photoshop CS2 Windows"]
    assert found["camera"].status == WARNING and "no camera make or model" in found["camera"].text
    assert found["dimensions"].status == OK and found["credentials"].status == NOT_AVAILABLE


def test_shared_crop_reports_its_dimension_mismatch_honestly(reader, photos_dir):
    """The shared photos are lossless centre crops whose EXIF still describes the uncropped original: the
    dimension check must say so, and the thumbnail (the whole original frame) must be found wider than the crop."""
    found = checks(reader, photos_dir / IPHONE)
    dims = found["dimensions"]
    assert dims.status == WARNING and dims.evidence == {"exif": [3264, 2448], "stored": [1024, 768]}
    assert "EXIF says 3264x2448, the stored pixels are 1024x768" in dims.text
    thumb = found["thumbnail"]
    assert thumb.status == WARNING and thumb.evidence["outcome"] == "crop"
    # 1024 of 3264 px wide: the crop window is about 31 % of the thumbnail's width, centred
    assert abs(thumb.evidence["window_width"] - 1024 / 3264) < 0.04
    assert abs(thumb.evidence["window_x"] + thumb.evidence["window_width"] / 2 - 0.5) < 0.05
    assert found["camera"].status == OK and "Apple iPhone 6" in found["camera"].text


def _with_own_thumbnail(src, dst, pixels=None):
    """A shared photo's EXIF with a fresh thumbnail of its own picture (as the camera wrote for the uncropped
    original), saved by Pillow: the starting point of the edit / crop / replace cases."""
    piexif = pytest.importorskip("piexif")
    with Image.open(src) as img:
        exif = piexif.load(img.info["exif"])
        picture = Image.fromarray(pixels) if pixels is not None else img.convert("RGB")
    small = picture.copy()
    small.thumbnail((160, 160))
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=80)
    exif["thumbnail"] = buf.getvalue()
    exif["1st"] = {piexif.ImageIFD.Compression: 6}
    picture.save(dst, "JPEG", quality=95, exif=piexif.dump(exif))
    return dst


def test_resaved_with_old_thumbnail_then_edited_cropped_replaced(reader, photos_dir, tmp_path):
    src = photos_dir / IPHONE
    base = _with_own_thumbnail(src, tmp_path / "base.jpg")
    assert checks(reader, base)["thumbnail"].evidence["outcome"] == "match"
    with Image.open(base) as img:
        exif, pixels = img.info["exif"], np.asarray(img.convert("RGB")).copy()
    # edited after the thumbnail: a block of the picture painted over, the old EXIF (and thumbnail) kept
    pixels[100:340, 600:900] = (255, 40, 40)
    Image.fromarray(pixels).save(tmp_path / "edited.jpg", quality=95, exif=exif)
    edited = checks(reader, tmp_path / "edited.jpg")["thumbnail"]
    assert edited.status == WARNING and edited.evidence["outcome"] == "edited", edited
    assert edited.evidence["region_col"] in (4, 5, 6) and edited.evidence["region_row"] in (1, 2, 3)
    # a crop of it, re-saved by Pillow with the old thumbnail kept
    with Image.open(base) as img:
        img.crop((200, 150, 712, 534)).save(tmp_path / "crop.jpg", quality=95, exif=exif)
    crop = checks(reader, tmp_path / "crop.jpg")
    assert crop["thumbnail"].evidence["outcome"] == "crop" and crop["thumbnail"].status == WARNING
    assert abs(crop["thumbnail"].evidence["window_width"] - 0.5) < 0.05
    assert crop["dimensions"].status == WARNING and "the stored pixels are 512x384" in crop["dimensions"].text
    # another photo's pixels under this EXIF and thumbnail
    other = sorted(p for p in photos_dir.glob("Canon*/*.jpg"))[0]
    other_pixels, _ = load_rgb(other)
    Image.fromarray(other_pixels).save(tmp_path / "other.jpg", quality=95, exif=exif)
    assert checks(reader, tmp_path / "other.jpg")["thumbnail"].evidence["outcome"] == "other"


def _exiftool(*args):
    exe = shutil.which("exiftool")
    if not exe:
        pytest.skip("exiftool is not installed (apt install libimage-exiftool-perl)")
    subprocess.run([exe, "-q", "-overwrite_original", *map(str, args)], check=True)


def test_editing_software_in_xmp_and_dates_rewritten(reader, photos_dir, tmp_path):
    path = tmp_path / "xmp.jpg"
    shutil.copy(photos_dir / IPHONE, path)
    assert checks(reader, path)["software"].status == OK  # the iPhone writes only its iOS version
    _exiftool("-XMP-xmp:CreatorTool=Adobe Photoshop Lightroom Classic 12.4 (Windows)",
              "-EXIF:ModifyDate=2024:03:01 09:30:00", path)
    found = checks(reader, path)
    assert found["software"].status == WARNING
    assert "Adobe Photoshop Lightroom Classic 12.4 (Windows)" in found["software"].text
    assert "XMP:CreatorTool" in found["software"].text
    dates = found["dates"]
    assert dates.status == WARNING and "EXIF ModifyDate" in dates.text and "after" in dates.text
    assert dates.evidence["EXIF:ModifyDate"] == "2024:03:01 09:30:00"


def test_stripped_exif(reader, photos_dir, tmp_path):
    pixels, _ = load_rgb(photos_dir / IPHONE)
    Image.fromarray(pixels).save(tmp_path / "stripped.jpg", quality=90)
    found = checks(reader, tmp_path / "stripped.jpg")
    assert found["camera"].status == WARNING and "no EXIF metadata at all" in found["camera"].text
    assert found["dimensions"].status == NOT_AVAILABLE and found["thumbnail"].status == NOT_AVAILABLE
    assert found["dates"].status == NOT_AVAILABLE


# ---------------------------------------------------------------------------------------------- Content Credentials
def _test_signer():
    """An ES256 certificate chain made here (a CA and the signing certificate C2PA requires), and its key."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    name = lambda cn: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),  # noqa: E731
                                 x509.NameAttribute(NameOID.ORGANIZATION_NAME, "exiflang tests")])
    usage = dict(content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
                 encipher_only=False, decipher_only=False)

    def cert(subject, issuer, key, signing_key, ca):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
             .not_valid_after(now + datetime.timedelta(days=7))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, **usage), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if not ca:
            b = (b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                 .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), critical=False))
        return b.sign(signing_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert(name("exiflang test CA"), name("exiflang test CA"), ca_key, ca_key, True)
    leaf = cert(name("exiflang test newsroom"), ca.subject, key, ca_key, False)
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return pem(leaf) + pem(ca), private, pem(ca).decode()


@pytest.fixture(scope="module")
def signed(tmp_path_factory, photos_dir):
    """A shared photo signed with Content Credentials recording 'created' and 'edited' (no network: no timestamp)."""
    c2pa = pytest.importorskip("c2pa", reason="c2pa-python is not installed (./setup.sh installs it)")
    chain, key, ca = _test_signer()
    folder = tmp_path_factory.mktemp("c2pa")
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))
    manifest = {"claim_generator_info": [{"name": "exiflang-tests", "version": "1.0"}], "title": "signed.jpg",
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": "c2pa.created",
                     "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"},
                    {"action": "c2pa.color_adjustments", "softwareAgent": {"name": "Desk Editor 2"}}]}}]}
    c2pa.Builder(manifest).sign_file(photos_dir / IPHONE, folder / "signed.jpg", signer)
    data = bytearray((folder / "signed.jpg").read_bytes())
    data[-5000] ^= 0x55  # one byte of the picture's compressed data, changed after signing
    (folder / "tampered.jpg").write_bytes(bytes(data))
    return folder, ca


def test_content_credentials_valid_untrusted_trusted_and_tampered(signed):
    folder, ca = signed
    with ProvenanceReader() as untrusted, ProvenanceReader(trust_anchors=ca) as trusting:
        plain = checks(untrusted, folder / "signed.jpg")["credentials"]
        trusted = checks(trusting, folder / "signed.jpg")["credentials"]
        tampered = checks(trusting, folder / "tampered.jpg")["credentials"]
    assert plain.status == WARNING and plain.evidence["state"] == "valid"
    assert "exiflang test newsroom" in plain.text and "not on a trust list" in plain.text
    assert plain.evidence["actions"] == ["c2pa.created", "c2pa.color_adjustments (Desk Editor 2)"]
    assert "c2pa.color_adjustments (Desk Editor 2)" in plain.text
    assert trusted.status == OK and trusted.evidence["state"] == "trusted"
    assert tampered.status == WARNING and tampered.evidence["state"] == "invalid"
    assert "INVALID" in tampered.text and "assertion.dataHash.mismatch" in tampered.text


def test_no_credentials_and_a_non_jpeg(reader, exif_samples_dir):
    tiff = sorted((exif_samples_dir / "tiff").iterdir())[0]
    found = checks(reader, tiff)
    assert found["credentials"].status == NOT_AVAILABLE and "no Content Credentials" in found["credentials"].text
