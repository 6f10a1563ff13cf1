package wire

import (
	"bytes"
	"encoding/json"
)

// MarshalData encodes data without HTML escaping, so that "<", ">" and "&"
// in user text read as themselves in kcat and jq.
func MarshalData(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}
