"""A Kassa fulfillment plugin in Python: signed license keys.

For each unit it derives `PREFIX-XXXXX-XXXXX-XXXXX-XXXXX`, where the groups are an
HMAC-SHA256 signature (keyed with the plugin's secret `signing-key`) of the prefix,
the order, the line and the unit number, in Crockford base32: the same keys as the
Rust example `keygen`, so the merchant's app verifies them offline the same way.

Build: componentize-py -d ../../wit -w fulfillment componentize app -o python-keygen.wasm
"""

import hashlib
import warnings  # noqa: F401 (hmac imports it when called; componentize-py bundles what is imported)
import hmac

from componentize_py_types import Err
from wit_world import WitWorld
from wit_world.imports import host, types

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def base32(data: bytes, length: int) -> str:
    out = []
    buffer = 0
    bits = 0
    for byte in data:
        buffer = (buffer << 8) | byte
        bits += 8
        while bits >= 5 and len(out) < length:
            bits -= 5
            out.append(ALPHABET[(buffer >> bits) & 31])
    return "".join(out)


def key(secret: bytes, prefix: str, order: str, line: int, unit: int) -> str:
    message = f"{prefix}|{order}|{line}|{unit}".encode()
    sig = base32(hmac.new(secret, message, hashlib.sha256).digest(), 20)
    return f"{prefix}-{sig[0:5]}-{sig[5:10]}-{sig[10:15]}-{sig[15:20]}"


class WitWorld(WitWorld):
    def fulfill(self, request: types.Request) -> list[str]:
        secret = host.secret("signing-key")
        if secret is None:
            raise Err(types.FulfillError_Permanent("the secret signing-key is not set"))
        prefix = dict(request.config).get("prefix", "KEY")
        host.log(
            f"generating {request.quantity} key(s) for {request.order_id} line {request.line_no}"
        )
        return [
            key(secret.encode(), prefix, request.order_id, request.line_no, unit)
            for unit in range(1, request.quantity + 1)
        ]
