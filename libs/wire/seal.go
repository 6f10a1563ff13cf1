package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// TypeSeal is the CloudEvents type of a seal: the last record a decider
// writes to an events partition in each transaction, signing every record
// it wrote there before it.
const TypeSeal = "dev.assent.log.seal"

// AlgorithmEd25519 is the only signature algorithm.
const AlgorithmEd25519 = "ed25519"

// SealActor is the actor of every seal.
const SealActor = "system:decider"

// sealDomain opens every signed string, so that a seal signature can never
// be mistaken for a signature over anything else.
const sealDomain = "assent-seal-v1"

// ErrSeal is wrapped by every error VerifySeal returns.
var ErrSeal = errors.New("wire: seal does not verify")

// Seal is the data of a dev.assent.log.seal event. It signs a run of
// Count records of one events partition: the first links (prevhash) to
// From, the head of the partition's authenticated chain when the
// transaction began, and the last hashes to Head. The seal itself links to
// Head, so the next transaction's From is the seal's own hash. The field
// order is the order on the wire
// (schemas/events/dev.assent.log.seal.schema.json).
type Seal struct {
	Partition int32  `json:"partition"`
	From      string `json:"from"`  // the authenticated head the run extends
	Head      string `json:"head"`  // the hash of the run's last record; also the seal's prevhash
	Count     int    `json:"count"` // records in the run, at least 1
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"` // standard base64 of the 64-byte Ed25519 signature
	Algorithm string `json:"algorithm"` // "ed25519"
}

// SealMessage is the canonical string a seal signs (see schemas/README.md):
// seven "\n" separators, no trailing newline, and the time formatted
// exactly as Marshal writes it.
func SealMessage(topic string, partition int32, from, head string, count int, t time.Time) []byte {
	b := make([]byte, 0, 220)
	b = append(b, sealDomain...)
	b = append(b, '\n')
	b = append(b, topic...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, int64(partition), 10)
	b = append(b, '\n')
	b = append(b, from...)
	b = append(b, '\n')
	b = append(b, head...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, int64(count), 10)
	b = append(b, '\n')
	return t.UTC().AppendFormat(b, timeLayout)
}

// NewSeal returns the seal envelope for a run of count records of
// partition of topic that extends from and ends at head, signed at time t.
// Its prevhash is head. The record for it has no key; set its Partition.
func NewSeal(s *Signer, source, topic string, partition int32, from, head string, count int, t time.Time) (Envelope, error) {
	if s == nil {
		return Envelope{}, errors.New("wire: no signer for the seal")
	}
	if !validHash(from) || !validHash(head) || count < 1 || partition < 0 {
		return Envelope{}, fmt.Errorf("wire: seal of partition %d: bad run (from %q, head %q, count %d)", partition, from, head, count)
	}
	t = t.UTC()
	sig := ed25519.Sign(s.key, SealMessage(topic, partition, from, head, count, t))
	data, err := MarshalData(Seal{
		Partition: partition, From: from, Head: head, Count: count, KeyID: s.keyID,
		Signature: base64.StdEncoding.EncodeToString(sig), Algorithm: AlgorithmEd25519,
	})
	if err != nil {
		return Envelope{}, fmt.Errorf("wire: encode seal: %w", err)
	}
	return Envelope{
		SpecVersion:     SpecVersion,
		ID:              NewID(t),
		Source:          source,
		Type:            TypeSeal,
		Time:            t,
		DataContentType: DataContentTypeJSON,
		Actor:           SealActor,
		PrevHash:        head,
		Data:            data,
	}, nil
}

// DecodeSeal reads the data of a seal envelope strictly: unknown or
// missing fields are refused.
func DecodeSeal(env Envelope) (Seal, error) {
	if env.Type != TypeSeal {
		return Seal{}, fmt.Errorf("%w: type is %q", ErrSeal, env.Type)
	}
	if s, ok := decodeSealData(env.Data); ok {
		return s, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(env.Data, &raw); err != nil {
		return Seal{}, fmt.Errorf("%w: data: %w", ErrSeal, err)
	}
	for _, f := range []string{"partition", "from", "head", "count", "key_id", "signature", "algorithm"} {
		if _, ok := raw[f]; !ok {
			return Seal{}, fmt.Errorf("%w: data.%s is missing", ErrSeal, f)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(env.Data))
	dec.DisallowUnknownFields()
	var s Seal
	if err := dec.Decode(&s); err != nil {
		return Seal{}, fmt.Errorf("%w: data: %w", ErrSeal, err)
	}
	return s, nil
}

// VerifySeal checks a seal read from partition of topic on its own: that
// it has no subject, that data.partition is where it was read and
// data.head its prevhash, and that the signature verifies with the key
// named by data.key_id and was made while that key was valid. Whether the
// run it signs is the one in the log is Authenticator's to check.
func VerifySeal(keys *KeyRing, topic string, partition int32, env Envelope) (Seal, error) {
	s, err := DecodeSeal(env)
	if err != nil {
		return s, err
	}
	switch {
	case env.Subject != "":
		return s, fmt.Errorf("%w: it has a subject (%q); a seal belongs to a partition", ErrSeal, env.Subject)
	case s.Algorithm != AlgorithmEd25519:
		return s, fmt.Errorf("%w: algorithm %q, want %q", ErrSeal, s.Algorithm, AlgorithmEd25519)
	case s.Partition != partition:
		return s, fmt.Errorf("%w: data.partition is %d but it was read from partition %d (copied from another partition)", ErrSeal, s.Partition, partition)
	case s.Head != env.PrevHash:
		return s, fmt.Errorf("%w: data.head %s differs from its prevhash %s", ErrSeal, s.Head, env.PrevHash)
	case s.Count < 1:
		return s, fmt.Errorf("%w: count is %d", ErrSeal, s.Count)
	}
	k, err := keys.Lookup(s.KeyID, env.Time)
	if err != nil {
		return s, fmt.Errorf("%w: %w", ErrSeal, err)
	}
	sig, err := base64.StdEncoding.DecodeString(s.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return s, fmt.Errorf("%w: signature is not %d bytes of standard base64", ErrSeal, ed25519.SignatureSize)
	}
	if !ed25519.Verify(k, SealMessage(topic, s.Partition, s.From, s.Head, s.Count, env.Time), sig) {
		return s, fmt.Errorf("%w: the Ed25519 signature does not verify with key %q (forged, or the seal was altered)", ErrSeal, s.KeyID)
	}
	return s, nil
}

// sealNames are the members of a seal's data as NewSeal writes them, in
// that order, as they start a member.
var sealNames = [...]string{`"partition":`, `"from":`, `"head":`, `"count":`, `"key_id":`, `"signature":`, `"algorithm":`}

// decodeSealData decodes a seal's data written as NewSeal writes it: every
// member once, in order, strings without escapes, integers in range. That
// is the same Seal the strict decoder returns for it (ok); anything else
// is for the strict decoder (not ok), which says what is wrong. Every
// reader verifies every seal: this spares each a reflective decoding.
func decodeSealData(d []byte) (Seal, bool) {
	var s Seal
	if len(d) < 2 || d[0] != '{' || d[len(d)-1] != '}' {
		return s, false
	}
	d = d[1 : len(d)-1]
	for k, name := range sealNames {
		if k > 0 {
			if len(d) == 0 || d[0] != ',' {
				return s, false
			}
			d = d[1:]
		}
		rest, ok := bytes.CutPrefix(d, []byte(name))
		if !ok {
			return s, false
		}
		var n int64
		var str string
		switch k {
		case 0, 3: // partition, count
			if n, rest, ok = sealInt(rest); !ok {
				return s, false
			}
		default:
			if str, rest, ok = sealString(rest); !ok {
				return s, false
			}
		}
		switch k {
		case 0:
			if n < math.MinInt32 || n > math.MaxInt32 {
				return s, false
			}
			s.Partition = int32(n)
		case 1:
			s.From = str
		case 2:
			s.Head = str
		case 3:
			s.Count = int(n)
		case 4:
			s.KeyID = str
		case 5:
			s.Signature = str
		default:
			s.Algorithm = str
		}
		d = rest
	}
	return s, len(d) == 0
}

// sealInt reads a JSON integer that encoding/json decodes as written: an
// optional minus and at most 18 digits without a leading zero.
func sealInt(d []byte) (int64, []byte, bool) {
	neg := len(d) > 0 && d[0] == '-'
	if neg {
		d = d[1:]
	}
	k := 0
	for k < len(d) && d[k] >= '0' && d[k] <= '9' {
		k++
	}
	if k == 0 || k > 18 || (d[0] == '0' && k > 1) || (neg && d[0] == '0') {
		return 0, d, false
	}
	n, err := strconv.ParseInt(string(d[:k]), 10, 64)
	if err != nil {
		return 0, d, false
	}
	if neg {
		n = -n
	}
	return n, d[k:], true
}

// sealString reads a JSON string of printable ASCII without escapes,
// which decodes to its own bytes.
func sealString(d []byte) (string, []byte, bool) {
	if len(d) == 0 || d[0] != '"' {
		return "", d, false
	}
	for k := 1; k < len(d); k++ {
		switch c := d[k]; {
		case c == '"':
			return string(d[1:k]), d[k+1:], true
		case c == '\\' || c < 0x20 || c >= 0x7f:
			return "", d, false
		}
	}
	return "", d, false
}
