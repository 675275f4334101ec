// A Kassa fulfillment plugin in Go: signed license keys, the same as the Rust
// example keygen and the Python example python-keygen.
package export_wit_world

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"

	witTypes "go.bytecodealliance.org/pkg/wit/types"
	"wit_component/kassa_plugin_host"
	. "wit_component/kassa_plugin_types"
)

const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// base32 is the Crockford base32 of the first `length` 5-bit groups of data.
func base32(data []byte, length int) string {
	out := make([]byte, 0, length)
	buffer, bits := uint32(0), 0
	for _, b := range data {
		buffer = buffer<<8 | uint32(b)
		bits += 8
		for bits >= 5 && len(out) < length {
			bits -= 5
			out = append(out, alphabet[(buffer>>bits)&31])
		}
	}
	return string(out)
}

func key(secret []byte, prefix, order string, line, unit uint32) string {
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "%s|%s|%d|%d", prefix, order, line, unit)
	sig := base32(mac.Sum(nil), 20)
	return fmt.Sprintf("%s-%s-%s-%s-%s", prefix, sig[0:5], sig[5:10], sig[10:15], sig[15:20])
}

func Fulfill(request Request) witTypes.Result[[]string, FulfillError] {
	secret := kassa_plugin_host.Secret("signing-key")
	if secret.IsNone() {
		return witTypes.Err[[]string, FulfillError](MakeFulfillErrorPermanent("the secret signing-key is not set"))
	}
	prefix := "KEY"
	for _, entry := range request.Config {
		if entry.F0 == "prefix" {
			prefix = entry.F1
		}
	}
	kassa_plugin_host.Log(fmt.Sprintf("generating %d key(s) for %s line %d", request.Quantity, request.OrderId, request.LineNo))
	keys := make([]string, 0, request.Quantity)
	for unit := uint32(1); unit <= request.Quantity; unit++ {
		keys = append(keys, key([]byte(secret.Some()), prefix, request.OrderId, request.LineNo, unit))
	}
	return witTypes.Ok[[]string, FulfillError](keys)
}
