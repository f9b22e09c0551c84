package webanktest

import (
	"crypto/sha1"
	"encoding/hex"
	"slices"
	"strings"
)

// sign returns WeBank's signature over values: the uppercase hex SHA-1 of
// the values sorted in plain byte order and concatenated with no separator.
// For getOcrResult the values are app_id, order_no, version, SIGN ticket and
// nonce, in any order.
func sign(values ...string) string {
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	sum := sha1.Sum([]byte(strings.Join(sorted, "")))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}
