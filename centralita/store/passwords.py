"""Console passwords: salted scrypt hashes, and their check.

The work factor is stored in each hash, so raising SCRYPT_N later leaves older hashes
readable; `check_password` bounds what a stored hash may ask for (_SCRYPT_MAX_N).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

# scrypt parameters for console passwords: 16 MiB and ~50 ms per hash on one core.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_MAX_N = 2**20


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        dklen=32,
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, encoded: str) -> bool:
    try:
        scheme, n_text, r_text, p_text, salt_hex, digest_hex = encoded.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
    except ValueError:
        return False
    if scheme != "scrypt" or not 1 < n <= _SCRYPT_MAX_N or not 0 < r <= 32 or not 0 < p <= 16:
        return False
    digest = hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=len(expected),
        maxmem=256 * r * n + 2**20,
    )
    return hmac.compare_digest(digest, expected)
