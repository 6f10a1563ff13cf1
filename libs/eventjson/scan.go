package eventjson

import (
	"bytes"
	"errors"
	"fmt"
)

// The JSON helpers of the decoders (Decoder here, and auditor verify's):
// they walk the bytes of a record without decoding them, strictly enough
// that whatever they accept is one well-formed JSON value, and leave
// anything unusual (an escape) to the full decoders.

var errScan = errors.New("not a CloudEvents JSON object")

func skipWS(v []byte, i int) int {
	for i < len(v) && (v[i] == ' ' || v[i] == '\n' || v[i] == '\t' || v[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the contents of the JSON string at v[i], the index
// after it, and whether it has escapes.
func scanString(v []byte, i int) ([]byte, int, bool, error) {
	if i >= len(v) || v[i] != '"' {
		return nil, i, false, fmt.Errorf("%w: expected a string", errScan)
	}
	j := bytes.IndexByte(v[i+1:], '"')
	if j < 0 {
		return nil, i, false, fmt.Errorf("%w: unterminated string", errScan)
	}
	end := i + 1 + j
	if bytes.IndexByte(v[i+1:end], '\\') < 0 {
		return v[i+1 : end], end + 1, false, nil
	}
	// Escapes: walk to the real closing quote.
	k := i + 1
	for k < len(v) {
		switch v[k] {
		case '\\':
			k += 2
			continue
		case '"':
			return v[i+1 : k], k + 1, true, nil
		}
		k++
	}
	return nil, i, false, fmt.Errorf("%w: unterminated string", errScan)
}

const maxDepth = 256

// skipValue returns the index after the JSON value at v[i].
func skipValue(v []byte, i, depth int) (int, error) {
	if depth > maxDepth {
		return i, fmt.Errorf("%w: nested too deeply", errScan)
	}
	if i >= len(v) {
		return i, errScan
	}
	switch c := v[i]; c {
	case '"':
		_, j, _, err := scanString(v, i)
		return j, err
	case '{', '[':
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = skipWS(v, i+1)
		if i < len(v) && v[i] == closer {
			return i + 1, nil
		}
		for {
			if c == '{' {
				_, j, _, err := scanString(v, i)
				if err != nil {
					return j, err
				}
				i = skipWS(v, j)
				if i >= len(v) || v[i] != ':' {
					return i, errScan
				}
				i = skipWS(v, i+1)
			}
			j, err := skipValue(v, i, depth+1)
			if err != nil {
				return j, err
			}
			i = skipWS(v, j)
			if i >= len(v) {
				return i, errScan
			}
			if v[i] == ',' {
				i = skipWS(v, i+1)
				continue
			}
			if v[i] == closer {
				return i + 1, nil
			}
			return i, fmt.Errorf("%w: unexpected %q", errScan, v[i])
		}
	default: // number, true, false, null
		j := i
		for j < len(v) && v[j] != ',' && v[j] != '}' && v[j] != ']' && v[j] != ' ' && v[j] != '\n' && v[j] != '\t' && v[j] != '\r' {
			j++
		}
		if j == i {
			return i, fmt.Errorf("%w: expected a value", errScan)
		}
		return j, nil
	}
}

// Span is one member of a JSON object: where its value starts and ends.
type Span struct {
	Key        []byte
	Start, End int
}

// Members lists the members of the JSON object v; ok is false when v is
// not one, or a name has an escape or appears twice.
func Members(v []byte, out []Span) ([]Span, bool) {
	i := skipWS(v, 0)
	if i >= len(v) || v[i] != '{' {
		return nil, false
	}
	i = skipWS(v, i+1)
	if i < len(v) && v[i] == '}' {
		return out, skipWS(v, i+1) == len(v)
	}
	for {
		key, j, esc, err := scanString(v, skipWS(v, i))
		if err != nil || esc {
			return nil, false
		}
		for _, m := range out {
			if bytes.EqualFold(m.Key, key) { // the decoder matches names regardless of case
				return nil, false
			}
		}
		i = skipWS(v, j)
		if i >= len(v) || v[i] != ':' {
			return nil, false
		}
		start := skipWS(v, i+1)
		end, err := skipValue(v, start, 0)
		if err != nil {
			return nil, false
		}
		out = append(out, Span{Key: key, Start: start, End: end})
		i = skipWS(v, end)
		switch {
		case i < len(v) && v[i] == ',':
			i++
		case i < len(v) && v[i] == '}':
			return out, skipWS(v, i+1) == len(v)
		default:
			return nil, false
		}
	}
}

// Find returns the member of ms named name.
func Find(ms []Span, name string) (Span, bool) {
	for _, m := range ms {
		if string(m.Key) == name {
			return m, true
		}
	}
	return Span{}, false
}
