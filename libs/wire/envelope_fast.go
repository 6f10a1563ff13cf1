package wire

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode/utf8"
)

// attrSlots are the attributes unmarshalFast knows, in Marshal's order;
// their index is their bit in its "seen" set.
var attrSlots = [...]string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype",
	"actor", "commandid", "sequence", "prevhash", "authkeyid", "authsig", "data"}

const dataSlot = len(attrSlots) - 1

// unmarshalFast decodes an envelope written the way Marshal writes it (no
// whitespace between tokens, no escapes in attribute names or string
// values, only known attributes, each once) without json.Decoder, which
// costs a reader about ten times as much. ok is false whenever the input
// is anything else, or wrong in any way: Unmarshal then decodes it with
// the general decoder, which also words the error. So unmarshalFast never
// accepts what the general decoder refuses, and what it accepts it decodes
// to the same Envelope (FuzzUnmarshalFastAgrees).
func unmarshalFast(b []byte) (env Envelope, ok bool) {
	if len(b) < 2 || b[0] != '{' || b[1] == '}' {
		return env, false
	}
	var (
		seen    uint16
		rawTime string
	)
	i := 1
	for {
		// The attribute name: a plain string.
		if i >= len(b) || b[i] != '"' {
			return env, false
		}
		j := i + 1
		for j < len(b) && b[j] != '"' {
			if c := b[j]; c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
				return env, false
			}
			j++
		}
		if j+1 >= len(b) || b[j+1] != ':' {
			return env, false
		}
		slot := -1
		for k, name := range attrSlots {
			if string(b[i+1:j]) == name {
				slot = k
				break
			}
		}
		if slot < 0 || seen&(1<<slot) != 0 {
			return env, false // an extension, or a repeat: the general decoder decides
		}
		seen |= 1 << slot
		i = j + 2
		if slot == dataSlot {
			end, ok := validAt(b, i)
			if !ok {
				return env, false
			}
			env.Data = json.RawMessage(bytes.Clone(b[i:end]))
			i = end
		} else {
			// A string value without escapes or control characters, in
			// valid UTF-8, is its own content.
			if i >= len(b) || b[i] != '"' {
				return env, false
			}
			j := i + 1
			ascii := true
			for j < len(b) && b[j] != '"' {
				c := b[j]
				if c == '\\' || c < 0x20 {
					return env, false
				}
				if c >= utf8.RuneSelf {
					ascii = false
				}
				j++
			}
			if j >= len(b) || j == i+1 || (!ascii && !utf8.Valid(b[i+1:j])) {
				return env, false
			}
			v := string(b[i+1 : j])
			if slot == 5 {
				rawTime = v
			} else {
				*env.stringAttr(attrSlots[slot], nil) = v
			}
			i = j + 1
		}
		if i >= len(b) {
			return env, false
		}
		if b[i] == ',' {
			i++
			continue
		}
		if b[i] != '}' || i+1 != len(b) {
			return env, false
		}
		break
	}
	if seen&1 == 0 || rawTime == "" {
		return env, false
	}
	t, err := time.Parse(time.RFC3339Nano, rawTime)
	if err != nil {
		return env, false
	}
	if _, offset := t.Zone(); offset != 0 {
		return env, false
	}
	env.Time = t.UTC()
	if env.validateAttrs() != nil { // data is valid JSON: checked above
		return env, false
	}
	return env, true
}

// skipValue returns where the JSON value that starts at b[i] ends, by its
// structure alone (brackets and strings), or i when it cannot tell. The
// caller checks that what it spans is valid JSON: for valid JSON, the
// structure gives the one end a decoder would find.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			case '"':
				j = skipString(b, j)
				if j < 0 {
					return i
				}
			}
		}
		return i
	case '"':
		j := skipString(b, i)
		if j < 0 {
			return i
		}
		return j + 1
	default: // a number or a literal
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		return j
	}
}

// skipString returns the index of the quote that closes the string whose
// opening quote is b[i], or -1.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j
		}
	}
	return -1
}
