package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strconv"
	"strings"
	"time"
)

// SpecVersion is the only CloudEvents version this package reads or writes.
const SpecVersion = "1.0"

// DataContentTypeJSON is the datacontenttype of every Assent command and event.
const DataContentTypeJSON = "application/json"

// ErrInvalidEnvelope is wrapped by every error that Marshal, Unmarshal and
// DecodeRecord return for a message that breaks the format. Callers map it to
// the reason code "invalid".
var ErrInvalidEnvelope = errors.New("eventlog: invalid envelope")

// Envelope is one CloudEvents 1.0 event in structured JSON mode: the value of
// every record on the commands and events topics.
//
// The JSON tags document the wire names; the encoding itself is done by
// Marshal and Unmarshal (which MarshalJSON and UnmarshalJSON call), so that
// the time is always written in UTC and every rule below holds both ways.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`               // "1.0"; Marshal treats "" as "1.0"
	ID              string          `json:"id"`                        // a UUIDv7, see NewID
	Source          string          `json:"source"`                    // "assent/api", "assent/decider", ...
	Type            string          `json:"type"`                      // "dev.assent.command.submit", ...
	Subject         string          `json:"subject,omitempty"`         // the request id; also the record key
	Time            time.Time       `json:"time"`                      // RFC 3339, UTC on the wire
	DataContentType string          `json:"datacontenttype,omitempty"` // "application/json"; Marshal defaults it when Data is set
	Actor           string          `json:"actor,omitempty"`           // "user:alice@example.com", "service:billing", "system:decider"
	CommandID       string          `json:"commandid,omitempty"`       // on an event: the command that caused it
	Sequence        string          `json:"sequence,omitempty"`        // per-request event number, decimal, from "1"
	PrevHash        string          `json:"prevhash,omitempty"`        // on events: the chain link, see Hash
	AuthKeyID       string          `json:"authkeyid,omitempty"`       // on commands: the service key that signed it, see SignCommand
	AuthSig         string          `json:"authsig,omitempty"`         // on commands: standard base64 of the Ed25519 signature
	Data            json.RawMessage `json:"data,omitempty"`            // the payload, any JSON value
}

// wireEnvelope is Envelope as it is written: the same attributes in the same
// order, with the time already formatted.
type wireEnvelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Actor           string          `json:"actor,omitempty"`
	CommandID       string          `json:"commandid,omitempty"`
	Sequence        string          `json:"sequence,omitempty"`
	PrevHash        string          `json:"prevhash,omitempty"`
	AuthKeyID       string          `json:"authkeyid,omitempty"`
	AuthSig         string          `json:"authsig,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
}

// timeLayout is RFC 3339 with as many fractional digits as needed. Marshal
// always formats a UTC time with it, so the zone is always "Z".
const timeLayout = time.RFC3339Nano

// Marshal encodes env as a CloudEvents JSON object after validating it.
//
// An empty SpecVersion is written as "1.0", and an empty DataContentType is
// written as "application/json" when Data is set. The time is converted to
// UTC. Data is compacted; HTML characters are not escaped, so the value reads
// the same in kcat and jq as in Go. The result is deterministic: the same
// Envelope always gives the same bytes, which the hash chain relies on.
func Marshal(env Envelope) ([]byte, error) {
	if env.SpecVersion == "" {
		env.SpecVersion = SpecVersion
	}
	if env.DataContentType == "" && len(env.Data) > 0 {
		env.DataContentType = DataContentTypeJSON
	}
	env.Time = env.Time.UTC()
	if err := env.validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(wireEnvelope{
		SpecVersion:     env.SpecVersion,
		ID:              env.ID,
		Source:          env.Source,
		Type:            env.Type,
		Subject:         env.Subject,
		Time:            env.Time.Format(timeLayout),
		DataContentType: env.DataContentType,
		Actor:           env.Actor,
		CommandID:       env.CommandID,
		Sequence:        env.Sequence,
		PrevHash:        env.PrevHash,
		AuthKeyID:       env.AuthKeyID,
		AuthSig:         env.AuthSig,
		Data:            env.Data,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEnvelope, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Unmarshal decodes and validates one CloudEvents JSON object.
//
// It is strict about what Assent relies on: specversion must be "1.0"; id,
// source, type and time are required; the time must be RFC 3339 with a zero
// UTC offset; attribute names are matched exactly (JSON in Go is otherwise
// case-insensitive) and may not repeat; every known attribute except data
// must be a non-empty string. It tolerates what CloudEvents allows: unknown
// extension attributes (lowercase letters and digits) are accepted and
// dropped. data_base64 is refused, because Assent data is always JSON.
//
// Whatever Marshal writes, Unmarshal reads back unchanged.
func Unmarshal(b []byte) (Envelope, error) {
	if env, ok := unmarshalFast(b); ok {
		return env, nil
	}
	return unmarshalGeneral(b)
}

// unmarshalGeneral is Unmarshal for any input, with json.Decoder.
func unmarshalGeneral(b []byte) (Envelope, error) {
	var env Envelope
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return Envelope{}, invalidf("not a JSON object")
	}
	seen := make(map[string]bool)
	var rawTime string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Envelope{}, invalidf("%v", syntaxErr(err))
		}
		name, _ := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Envelope{}, invalidf("attribute %q: %v", name, syntaxErr(err))
		}
		if seen[name] {
			return Envelope{}, invalidf("attribute %q appears twice", name)
		}
		seen[name] = true

		if name == "data" {
			env.Data = raw
			continue
		}
		dst := env.stringAttr(name, &rawTime)
		if dst == nil {
			if name == "data_base64" {
				return Envelope{}, invalidf("data_base64 is not supported: Assent data is JSON, in data")
			}
			if !validExtensionName(name) {
				return Envelope{}, invalidf("attribute %q: CloudEvents attribute names are lowercase letters and digits", name)
			}
			continue // an extension this package does not know: tolerated
		}
		if err := json.Unmarshal(raw, dst); err != nil || raw[0] != '"' {
			return Envelope{}, invalidf("attribute %q must be a string, got %s", name, truncate(raw))
		}
		if *dst == "" {
			return Envelope{}, invalidf("attribute %q is present but empty", name)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return Envelope{}, invalidf("%v", syntaxErr(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Envelope{}, invalidf("trailing data after the JSON object")
	}

	if !seen["specversion"] {
		return Envelope{}, invalidf("specversion is required")
	}
	if rawTime == "" {
		return Envelope{}, invalidf("time is required")
	}
	t, err := time.Parse(time.RFC3339Nano, rawTime)
	if err != nil {
		return Envelope{}, invalidf("time %q is not RFC 3339", rawTime)
	}
	if _, offset := t.Zone(); offset != 0 {
		return Envelope{}, invalidf("time %q is not in UTC", rawTime)
	}
	env.Time = t.UTC()
	if err := env.validate(); err != nil {
		return Envelope{}, err
	}
	return env, nil
}

// MarshalJSON makes json.Marshal of an Envelope (for example inside an HTTP
// response) produce exactly what Marshal produces.
func (e Envelope) MarshalJSON() ([]byte, error) { return Marshal(e) }

// UnmarshalJSON makes json.Unmarshal into an Envelope as strict as Unmarshal.
func (e *Envelope) UnmarshalJSON(b []byte) error {
	env, err := Unmarshal(b)
	if err != nil {
		return err
	}
	*e = env
	return nil
}

// stringAttr returns where the string attribute name is decoded to, or nil
// if name is not a string attribute that Envelope keeps.
func (e *Envelope) stringAttr(name string, rawTime *string) *string {
	switch name {
	case "specversion":
		return &e.SpecVersion
	case "id":
		return &e.ID
	case "source":
		return &e.Source
	case "type":
		return &e.Type
	case "subject":
		return &e.Subject
	case "time":
		return rawTime
	case "datacontenttype":
		return &e.DataContentType
	case "actor":
		return &e.Actor
	case "commandid":
		return &e.CommandID
	case "sequence":
		return &e.Sequence
	case "prevhash":
		return &e.PrevHash
	case "authkeyid":
		return &e.AuthKeyID
	case "authsig":
		return &e.AuthSig
	}
	return nil
}

// validate checks the rules that hold on the wire both ways.
func (e *Envelope) validate() error {
	if err := e.validateAttrs(); err != nil {
		return err
	}
	if len(e.Data) > 0 && !validJSON(e.Data) {
		return invalidf("data is not valid JSON")
	}
	return nil
}

// validateAttrs is validate without the check of the data.
func (e *Envelope) validateAttrs() error {
	switch {
	case e.SpecVersion != SpecVersion:
		return invalidf("specversion is %q, want %q", e.SpecVersion, SpecVersion)
	case e.ID == "":
		return invalidf("id is required")
	case e.Source == "":
		return invalidf("source is required")
	case e.Type == "":
		return invalidf("type is required")
	case e.Time.IsZero():
		return invalidf("time is required")
	case e.Time.Year() < 0 || e.Time.Year() > 9999:
		return invalidf("time %v is outside RFC 3339", e.Time)
	}
	if e.Sequence != "" && !validSequence(e.Sequence) {
		return invalidf("sequence %q is not a decimal number from 1", e.Sequence)
	}
	if e.PrevHash != "" && !validHash(e.PrevHash) {
		return invalidf("prevhash %q is not \"sha256:\" and 64 lowercase hex digits", e.PrevHash)
	}
	if e.DataContentType != "" && !isJSONMediaType(e.DataContentType) {
		// Data is embedded as a JSON value, so it can only carry JSON.
		return invalidf("datacontenttype %q is not JSON", e.DataContentType)
	}
	return nil
}

// syntaxErr names the io.EOF that json.Decoder returns for a truncated
// document.
func syntaxErr(err error) error {
	if errors.Is(err, io.EOF) {
		return errors.New("unexpected end of JSON")
	}
	return err
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidEnvelope}, args...)...)
}

// validExtensionName reports whether name is a legal CloudEvents attribute
// name: lowercase ASCII letters and digits.
func validExtensionName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// validSequence reports whether s is a canonical decimal number >= 1 that
// fits in a uint64: no sign, no leading zero.
func validSequence(s string) bool {
	if s == "" || s[0] == '0' {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

func isJSONMediaType(ct string) bool {
	if ct == DataContentTypeJSON {
		return true // what Marshal writes; parsed, it is itself
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

func truncate(b []byte) string {
	const limit = 40
	if len(b) > limit {
		return string(b[:limit]) + "..."
	}
	return string(b)
}
