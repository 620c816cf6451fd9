"""The server's certificate: generated on first use, pinned by agents, rotatable by an administrator."""

from __future__ import annotations

import datetime
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.db import IntegrityError, transaction

from infrastructure.models import ServerCertificate
from portal.encryption import decrypt, encrypt
from portal.models import Event, User
from portal.services.audit import record_event


def thumbprint_of(der: bytes) -> str:
    return hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - Octopus thumbprints are SHA-1 by definition


def _generate() -> tuple[str, str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Reef Server")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365 * 100))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return thumbprint_of(certificate.public_bytes(serialization.Encoding.DER)), pem, key_pem


def current_server_certificate() -> ServerCertificate:
    certificate = ServerCertificate.objects.filter(is_current=True).first()
    if certificate is not None:
        return certificate
    thumbprint, pem, key_pem = _generate()
    try:
        with transaction.atomic():
            return ServerCertificate.objects.create(
                thumbprint=thumbprint, certificate_pem=pem, private_key_encrypted=encrypt(key_pem)
            )
    except IntegrityError:  # another process generated it first
        return ServerCertificate.objects.get(is_current=True)


def server_private_key_pem(certificate: ServerCertificate) -> str:
    return decrypt(certificate.private_key_encrypted)


@transaction.atomic
def rotate_server_certificate(*, actor: User) -> ServerCertificate:
    old = current_server_certificate()
    ServerCertificate.objects.filter(is_current=True).update(is_current=False)
    thumbprint, pem, key_pem = _generate()
    new = ServerCertificate.objects.create(
        thumbprint=thumbprint, certificate_pem=pem, private_key_encrypted=encrypt(key_pem)
    )
    record_event(
        actor=actor,
        category=Event.Category.MODIFIED,
        document_type="ServerCertificate",
        document_id="certificate-global",
        document_name="Server certificate",
        message=f"Server certificate rotated: {old.thumbprint} → {new.thumbprint}",
        changes={"thumbprint": [old.thumbprint, new.thumbprint]},
    )
    return new
