"""An agent's own key pair and self-signed certificate, in pure Python (no registry on a worker).

RSA key generation (Miller-Rabin), a minimal DER writer, and a PKCS#1 v1.5 sha256WithRSA signature:
enough for a certificate that Python's ssl module and OpenSSL load. Thumbprints are uppercase hex
SHA-1 of the certificate's DER, as Octopus shows them.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import secrets
import ssl

_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p ** 0.5) + 1))]


def _is_probable_prime(n: int, rounds: int = 40) -> bool:
    if n < 2:
        return False
    for p in _SMALL_PRIMES:
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


def _prime(bits: int, e: int) -> int:
    while True:
        candidate = secrets.randbits(bits) | (3 << (bits - 2)) | 1  # top two bits set: n has exactly 2*bits bits
        if candidate % e != 1 and _is_probable_prime(candidate):
            return candidate


# DER --------------------------------------------------------------------------------------------

def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _len(len(content)) + content


def _int(value: int) -> bytes:
    body = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")  # a leading zero keeps it positive
    return _tlv(0x02, body)


def _seq(*parts: bytes) -> bytes:
    return _tlv(0x30, b"".join(parts))


def _oid(dotted: str) -> bytes:
    numbers = [int(x) for x in dotted.split(".")]
    body = bytes([40 * numbers[0] + numbers[1]])
    for n in numbers[2:]:
        chunk = [n & 0x7F]
        n >>= 7
        while n:
            chunk.append(0x80 | (n & 0x7F))
            n >>= 7
        body += bytes(reversed(chunk))
    return _tlv(0x06, body)


def _time(moment: datetime.datetime) -> bytes:
    if moment.year < 2050:
        return _tlv(0x17, moment.strftime("%y%m%d%H%M%SZ").encode())
    return _tlv(0x18, moment.strftime("%Y%m%d%H%M%SZ").encode())


_NULL = b"\x05\x00"
_RSA = _seq(_oid("1.2.840.113549.1.1.1"), _NULL)
_SHA256_RSA = _seq(_oid("1.2.840.113549.1.1.11"), _NULL)
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def _name(common_name: str) -> bytes:
    return _seq(_tlv(0x31, _seq(_oid("2.5.4.3"), _tlv(0x0C, common_name.encode()))))


def _pem(label: str, der: bytes) -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def generate_certificate(common_name: str, bits: int = 2048, years: int = 100) -> tuple[str, str]:
    """(certificate PEM, PKCS#1 private key PEM) for a new RSA key pair."""
    e = 65537
    while True:
        p, q = _prime(bits // 2, e), _prime(bits // 2, e)
        if p != q:
            break
    n, phi = p * q, (p - 1) * (q - 1)
    d = pow(e, -1, phi)
    private_der = _seq(_int(0), _int(n), _int(e), _int(d), _int(p), _int(q), _int(d % (p - 1)), _int(d % (q - 1)),
                       _int(pow(q, -1, p)))
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    public_key = _seq(_RSA, _tlv(0x03, b"\x00" + _seq(_int(n), _int(e))))
    tbs = _seq(
        _tlv(0xA0, _int(2)),  # version 3
        _int(secrets.randbits(63) | 1),
        _SHA256_RSA,
        _name(common_name),
        _seq(_time(now - datetime.timedelta(days=1)), _time(now.replace(year=now.year + years))),
        _name(common_name),
        public_key,
    )
    k = (n.bit_length() + 7) // 8
    digest = _SHA256_DIGEST_INFO + hashlib.sha256(tbs).digest()
    padded = b"\x00\x01" + b"\xff" * (k - len(digest) - 3) + b"\x00" + digest
    signature = pow(int.from_bytes(padded, "big"), d, n).to_bytes(k, "big")
    certificate_der = _seq(tbs, _SHA256_RSA, _tlv(0x03, b"\x00" + signature))
    return _pem("CERTIFICATE", certificate_der), _pem("RSA PRIVATE KEY", private_der)


def thumbprint_of_der(der: bytes) -> str:
    return hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - Octopus thumbprints are SHA-1


def thumbprint_of_pem(pem: str) -> str:
    return thumbprint_of_der(ssl.PEM_cert_to_DER_cert(pem))


def normalise_thumbprint(value: str) -> str:
    return "".join(ch for ch in (value or "") if ch not in ": \t").upper()
