package systest

import (
	"bytes"

	"github.com/cockroachdb/pebble/v2"

	"github.com/assent-dev/assent/test/tb"
)

// PebbleDump is every key and value of a store, in key order: what two
// stores that must hold the same are compared by.
func PebbleDump(t tb.TB, db *pebble.DB) [][2][]byte {
	t.Helper()
	it, err := db.NewIter(nil)
	if err != nil {
		t.Fatalf("pebble: %v", err)
	}
	var out [][2][]byte
	for it.First(); it.Valid(); it.Next() {
		out = append(out, [2][]byte{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
	}
	if err := it.Close(); err != nil {
		t.Fatalf("pebble: %v", err)
	}
	return out
}
