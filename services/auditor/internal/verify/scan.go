package verify

import (
	"bytes"
	"errors"
	"fmt"
)

// The JSON helpers of verify's decoders (fastDecoder and bodies): they
// walk the bytes of a record without decoding them, strictly enough that
// whatever they accept is one well-formed JSON value, and leave anything
// unusual (an escape) to the full decoders.

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
