package verify

import (
	"bytes"
	"errors"
	"fmt"
)

// fields are the attributes verify needs from a record value, as raw
// bytes of their JSON strings (without the quotes).
//
// scan is no longer on verify's path: fastDecoder reads the envelope and
// the data in one pass, as strictly as the full decoders. Its helpers
// (skipWS, scanString, skipValue) serve fastDecoder and bodies.
type fields struct {
	id, typ, subject, sequence, prevhash []byte
	actor, commandid, time               []byte
	data                                 []byte // the raw JSON value, for the domain replay
	escaped                              bool   // some string had a backslash: decode it properly instead
}

var errScan = errors.New("not a CloudEvents JSON object")

// scan reads the top-level attributes of one JSON object. It checks the
// top-level structure strictly (one object, no duplicate attribute that
// verify relies on, nothing after it) and skips nested values by their
// brackets and strings.
func scan(v []byte) (fields, error) {
	var f fields
	i := skipWS(v, 0)
	if i >= len(v) || v[i] != '{' {
		return f, errScan
	}
	i = skipWS(v, i+1)
	if i < len(v) && v[i] == '}' {
		return f, fmt.Errorf("%w: empty object", errScan)
	}
	var seen uint16
	for {
		i = skipWS(v, i)
		key, j, esc, err := scanString(v, i)
		if err != nil {
			return f, err
		}
		f.escaped = f.escaped || esc
		i = skipWS(v, j)
		if i >= len(v) || v[i] != ':' {
			return f, fmt.Errorf("%w: no ':' after %q", errScan, key)
		}
		i = skipWS(v, i+1)
		var dst *[]byte
		var bit uint16
		switch string(key) {
		case "id":
			dst, bit = &f.id, 1
		case "type":
			dst, bit = &f.typ, 2
		case "subject":
			dst, bit = &f.subject, 4
		case "sequence":
			dst, bit = &f.sequence, 8
		case "prevhash":
			dst, bit = &f.prevhash, 16
		case "actor":
			dst, bit = &f.actor, 32
		case "commandid":
			dst, bit = &f.commandid, 64
		case "time":
			dst, bit = &f.time, 128
		case "data":
			bit = 256
		}
		if bit != 0 && seen&bit != 0 {
			return f, fmt.Errorf("%w: attribute %q appears twice", errScan, key)
		}
		seen |= bit
		switch {
		case dst != nil:
			s, j, esc, err := scanString(v, i)
			if err != nil {
				return f, fmt.Errorf("%w: attribute %q: %w", errScan, key, err)
			}
			f.escaped = f.escaped || esc
			*dst, i = s, j
		default: // data (kept raw for the domain replay), or an attribute verify does not read
			j, err := skipValue(v, i, 0)
			if err != nil {
				return f, err
			}
			if bit == 256 {
				f.data = v[i:j]
			}
			i = j
		}
		i = skipWS(v, i)
		if i >= len(v) {
			return f, errScan
		}
		if v[i] == ',' {
			i++
			continue
		}
		if v[i] == '}' {
			i++
			break
		}
		return f, fmt.Errorf("%w: unexpected %q", errScan, v[i])
	}
	if skipWS(v, i) != len(v) {
		return f, fmt.Errorf("%w: trailing data", errScan)
	}
	return f, nil
}

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
