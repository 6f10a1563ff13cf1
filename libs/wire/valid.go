package wire

import "encoding/json"

// validJSON reports what json.Valid reports: whether b is one JSON value,
// with nothing but whitespace around it. encoding/json's scanner calls a
// function for every byte; this walks the value with a loop per string,
// number and literal, several times faster on the events' data (a
// request.submitted carries its policy's approvers), which every reader
// checks on every record. Like json.Valid, it reads a string's bytes at
// 0x80 and above as they are (Unmarshal replaces invalid UTF-8; it does
// not refuse it). Values nested deeper than maxFastDepth are left to
// json.Valid, whose depth limit is its own.
func validJSON(b []byte) bool {
	end, ok, deep := validValue(b, skipSpace(b, 0), 0)
	if deep {
		return json.Valid(b)
	}
	return ok && skipSpace(b, end) == len(b)
}

// validAt checks the JSON value that starts at b[i] (no whitespace before
// it) and returns the index after it, in one pass.
func validAt(b []byte, i int) (int, bool) {
	end, ok, deep := validValue(b, i, 0)
	if deep {
		end = skipValue(b, i)
		return end, end > i && json.Valid(b[i:end])
	}
	return end, ok
}

const maxFastDepth = 64

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// validValue checks the value at b[i] and returns the index after it;
// deep is true when it is nested deeper than maxFastDepth.
func validValue(b []byte, i, depth int) (end int, ok, deep bool) {
	if i >= len(b) {
		return i, false, false
	}
	switch c := b[i]; {
	case c == '"':
		end, ok = validString(b, i)
		return end, ok, false
	case c == '{' || c == '[':
		if depth >= maxFastDepth {
			return i, false, true
		}
		return validContainer(b, i, depth)
	case c == '-' || (c >= '0' && c <= '9'):
		end, ok = validNumber(b, i)
		return end, ok, false
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
			return i + len(lit), true, false
		}
	}
	return i, false, false
}

// validContainer checks the object or array at b[i].
func validContainer(b []byte, i, depth int) (end int, ok, deep bool) {
	object := b[i] == '{'
	closer := byte(']')
	if object {
		closer = '}'
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closer {
		return i + 1, true, false
	}
	for {
		if object {
			if i >= len(b) || b[i] != '"' {
				return i, false, false
			}
			if i, ok = validString(b, i); !ok {
				return i, false, false
			}
			i = skipSpace(b, i)
			if i >= len(b) || b[i] != ':' {
				return i, false, false
			}
			i = skipSpace(b, i+1)
		}
		if i, ok, deep = validValue(b, i, depth+1); !ok {
			return i, false, deep
		}
		i = skipSpace(b, i)
		switch {
		case i < len(b) && b[i] == ',':
			i = skipSpace(b, i+1)
		case i < len(b) && b[i] == closer:
			return i + 1, true, false
		default:
			return i, false, false
		}
	}
}

// validString checks the string whose opening quote is b[i]: no control
// character, and only the escapes JSON has.
func validString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			i++
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i <= 4 || !hex4(b[i+1:i+5]) {
					return i, false
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

func hex4(h []byte) bool {
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// validNumber checks the number at b[i]: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}
