"""schemathesis hooks for Kassa: plugin uploads are `application/wasm`, raw bytes."""

import schemathesis

schemathesis.serializer.alias("application/wasm", "application/octet-stream")
