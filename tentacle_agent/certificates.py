"""An agent's own RSA key pair and self-signed X.509 certificate, in pure Python.

A worker may have no package registry, so this uses the standard library only:

1. Two primes from `secrets` candidates, sieved by small primes and tested with Miller-Rabin.
2. The key written as PKCS#1 `RSA PRIVATE KEY` DER, with a minimal DER writer.
3. A v3 TBSCertificate (subject = issuer, CA:TRUE, TLS client and server usage, key identifiers), so
   that OpenSSL accepts the certificate as its own trust anchor even under strict X.509 checks.
4. A sha256WithRSAEncryption signature: PKCS#1 v1.5 padding of the DigestInfo, raised to d mod n.

Thumbprints are the uppercase hex SHA-1 of the certificate's DER bytes, as Octopus shows them.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import math
import os
import secrets
import ssl
from pathlib import Path
from typing import NamedTuple

DEFAULT_KEY_BITS = 2048
DEFAULT_COMMON_NAME = "Reef Tentacle"
PUBLIC_EXPONENT = 65537

_SMALL_PRIMES = [p for p in range(3, 3000) if all(p % d for d in range(2, int(p**0.5) + 1))]
_SMALL_PRIMES_PRODUCT = math.prod(_SMALL_PRIMES)


class RsaKey(NamedTuple):
    n: int
    e: int
    d: int
    p: int
    q: int


# Primes -----------------------------------------------------------------------------------------


def is_probable_prime(n: int, rounds: int = 40) -> bool:
    """Miller-Rabin with random bases; a composite survives 40 rounds with probability below 2**-80."""
    if n < 2:
        return False
    for p in _SMALL_PRIMES[:50]:
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for _ in range(rounds):
        a = secrets.randbelow(n - 3) + 2
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _random_prime(bits: int) -> int:
    while True:
        # The top two bits set, so the product of two such primes has exactly 2 * bits bits.
        candidate = secrets.randbits(bits) | (3 << (bits - 2)) | 1
        if math.gcd(candidate, _SMALL_PRIMES_PRODUCT) != 1:  # cheap rejection of most composites
            continue
        if (candidate - 1) % PUBLIC_EXPONENT == 0:  # e must be invertible modulo p - 1
            continue
        if is_probable_prime(candidate):
            return candidate


def generate_rsa_key(bits: int = DEFAULT_KEY_BITS) -> RsaKey:
    if bits < 512 or bits % 2:
        raise ValueError("An RSA key has an even number of bits, 512 or more.")
    while True:
        p, q = _random_prime(bits // 2), _random_prime(bits // 2)
        if p == q:
            continue
        d = pow(PUBLIC_EXPONENT, -1, (p - 1) * (q - 1))
        return RsaKey(n=p * q, e=PUBLIC_EXPONENT, d=d, p=max(p, q), q=min(p, q))


# DER --------------------------------------------------------------------------------------------


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _length(len(content)) + content


def _integer(value: int) -> bytes:
    # One more bit than needed, so a set top bit gets a leading zero byte and the value stays positive.
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _sequence(*parts: bytes) -> bytes:
    return _tlv(0x30, b"".join(parts))


def _oid(dotted: str) -> bytes:
    numbers = [int(x) for x in dotted.split(".")]
    body = bytes([40 * numbers[0] + numbers[1]])
    for number in numbers[2:]:
        chunk = [number & 0x7F]
        number >>= 7
        while number:
            chunk.append(0x80 | (number & 0x7F))
            number >>= 7
        body += bytes(reversed(chunk))
    return _tlv(0x06, body)


def _bit_string(data: bytes, unused_bits: int = 0) -> bytes:
    return _tlv(0x03, bytes([unused_bits]) + data)


def _octet_string(data: bytes) -> bytes:
    return _tlv(0x04, data)


def _time(moment: datetime.datetime) -> bytes:
    if moment.year < 2050:  # RFC 5280: UTCTime through 2049, GeneralizedTime from 2050
        return _tlv(0x17, moment.strftime("%y%m%d%H%M%SZ").encode())
    return _tlv(0x18, moment.strftime("%Y%m%d%H%M%SZ").encode())


def _name(common_name: str) -> bytes:
    return _sequence(_tlv(0x31, _sequence(_oid("2.5.4.3"), _tlv(0x0C, common_name.encode()))))


def _extension(oid: str, value: bytes, critical: bool = False) -> bytes:
    return _sequence(_oid(oid), b"\x01\x01\xff" if critical else b"", _octet_string(value))


_NULL = b"\x05\x00"
_RSA_ENCRYPTION = _sequence(_oid("1.2.840.113549.1.1.1"), _NULL)
_SHA256_WITH_RSA = _sequence(_oid("1.2.840.113549.1.1.11"), _NULL)
# DigestInfo for SHA-256 (RFC 8017 section 9.2, note 1), up to the 32 bytes of the hash itself.
_SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


def private_key_der(key: RsaKey) -> bytes:
    """PKCS#1 RSAPrivateKey."""
    return _sequence(
        _integer(0),
        _integer(key.n),
        _integer(key.e),
        _integer(key.d),
        _integer(key.p),
        _integer(key.q),
        _integer(key.d % (key.p - 1)),
        _integer(key.d % (key.q - 1)),
        _integer(pow(key.q, -1, key.p)),
    )


def public_key_der(key: RsaKey) -> bytes:
    """PKCS#1 RSAPublicKey, the content of a SubjectPublicKeyInfo's bit string."""
    return _sequence(_integer(key.n), _integer(key.e))


def sign_sha256(key: RsaKey, message: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 with SHA-256."""
    size = (key.n.bit_length() + 7) // 8
    digest_info = _SHA256_DIGEST_INFO_PREFIX + hashlib.sha256(message).digest()
    padded = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
    return pow(int.from_bytes(padded, "big"), key.d, key.n).to_bytes(size, "big")


def _years_later(moment: datetime.datetime, years: int) -> datetime.datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February into a year that has none
        return moment.replace(year=moment.year + years, day=28)


def self_signed_certificate_der(key: RsaKey, common_name: str = DEFAULT_COMMON_NAME, years: int = 100) -> bytes:
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    public_key = public_key_der(key)
    key_id = hashlib.sha1(public_key).digest()  # noqa: S324 - RFC 5280's method 1 for key identifiers
    extensions = _tlv(
        0xA3,
        _sequence(
            _extension(
                "2.5.29.19", _sequence(b"\x01\x01\xff"), critical=True
            ),  # basicConstraints CA:TRUE (its own anchor)
            # keyUsage: digitalSignature, keyEncipherment, keyCertSign (bits 0, 2, 5; two unused bits)
            _extension("2.5.29.15", _bit_string(b"\xa4", unused_bits=2), critical=True),
            _extension(
                "2.5.29.37", _sequence(_oid("1.3.6.1.5.5.7.3.1"), _oid("1.3.6.1.5.5.7.3.2"))
            ),  # server + client auth
            _extension("2.5.29.14", _octet_string(key_id)),  # subjectKeyIdentifier
            _extension("2.5.29.35", _sequence(_tlv(0x80, key_id))),  # authorityKeyIdentifier (itself)
        ),
    )
    serial = int.from_bytes(secrets.token_bytes(16), "big") >> 1 | 1  # positive, at most 16 bytes, never zero
    tbs = _sequence(
        _tlv(0xA0, _integer(2)),  # version 3
        _integer(serial),
        _SHA256_WITH_RSA,
        _name(common_name),
        _sequence(_time(now - datetime.timedelta(days=1)), _time(_years_later(now, years))),
        _name(common_name),
        _sequence(_RSA_ENCRYPTION, _bit_string(public_key)),
        extensions,
    )
    return _sequence(tbs, _SHA256_WITH_RSA, _bit_string(sign_sha256(key, tbs)))


def pem(label: str, der: bytes) -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def generate_certificate(
    common_name: str = DEFAULT_COMMON_NAME, bits: int = DEFAULT_KEY_BITS, years: int = 100
) -> tuple[str, str]:
    """A new key pair and its self-signed certificate: (certificate PEM, PKCS#1 private key PEM)."""
    key = generate_rsa_key(bits)
    return pem("CERTIFICATE", self_signed_certificate_der(key, common_name, years)), pem(
        "RSA PRIVATE KEY", private_key_der(key)
    )


def write_private_file(path: Path, text: str) -> None:
    """Write owner-only (0600) and atomically: never a moment where the file is readable by others."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_certificate(
    certificate_path: Path, key_path: Path, common_name: str = DEFAULT_COMMON_NAME, bits: int = DEFAULT_KEY_BITS
) -> str:
    """Generate a key pair and certificate into two 0600 PEM files; returns the thumbprint."""
    certificate, key = generate_certificate(common_name, bits)
    write_private_file(key_path, key)
    write_private_file(certificate_path, certificate)
    return thumbprint_of_pem(certificate)


# Thumbprints ------------------------------------------------------------------------------------


def thumbprint_of_der(der: bytes) -> str:
    return hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - Octopus thumbprints are SHA-1


def thumbprint_of_pem(certificate_pem: str) -> str:
    """The thumbprint of the first certificate in a PEM text; ValueError if there is none."""
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    if begin not in certificate_pem or end not in certificate_pem:
        raise ValueError("not a PEM certificate")
    first = certificate_pem[certificate_pem.index(begin) : certificate_pem.index(end) + len(end)]
    return thumbprint_of_der(ssl.PEM_cert_to_DER_cert(first))


def normalise_thumbprint(value: str) -> str:
    """`ab:cd …` or `abcd…` as `ABCD…`."""
    return "".join(ch for ch in (value or "") if ch not in ": \t").upper()


def is_thumbprint(value: str) -> bool:
    value = normalise_thumbprint(value)
    return len(value) == 40 and all(ch in "0123456789ABCDEF" for ch in value)
