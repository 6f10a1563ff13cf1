package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// TypeCheckpoint is the CloudEvents type of a signed checkpoint.
const TypeCheckpoint = "dev.assent.log.checkpoint"

// AlgorithmEd25519 is the only checkpoint signature algorithm.
const AlgorithmEd25519 = "ed25519"

// CheckpointActor is the actor of every checkpoint.
const CheckpointActor = "system:decider"

// checkpointDomain opens every signed string, so that a checkpoint
// signature can never be mistaken for a signature over anything else.
const checkpointDomain = "assent-checkpoint-v1"

// ErrCheckpoint is wrapped by every error VerifyCheckpoint returns.
var ErrCheckpoint = errors.New("eventlog: checkpoint does not verify")

// Checkpoint is the data of a dev.assent.log.checkpoint event: it signs
// the head of one events partition's chain. The field order is the order
// on the wire (schemas/events/dev.assent.log.checkpoint.schema.json).
type Checkpoint struct {
	Partition int32  `json:"partition"`
	Head      string `json:"head"`   // the hash of the record at Offset; also the checkpoint's prevhash
	Offset    int64  `json:"offset"` // of the last record before the checkpoint
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"` // standard base64 of the 64-byte Ed25519 signature
	Algorithm string `json:"algorithm"` // "ed25519"
}

// CheckpointMessage is the canonical string a checkpoint signs (see
// schemas/README.md): five "\n" separators, no trailing newline, and the
// time formatted exactly as Marshal writes it.
func CheckpointMessage(topic string, partition int32, offset int64, head string, t time.Time) []byte {
	b := make([]byte, 0, 160)
	b = append(b, checkpointDomain...)
	b = append(b, '\n')
	b = append(b, topic...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, int64(partition), 10)
	b = append(b, '\n')
	b = strconv.AppendInt(b, offset, 10)
	b = append(b, '\n')
	b = append(b, head...)
	b = append(b, '\n')
	return t.UTC().AppendFormat(b, timeLayout)
}

// NewCheckpoint returns the checkpoint envelope that signs head, the hash
// of the record at offset in partition of topic, at time t. Its prevhash
// is head: a checkpoint is a link of the chain like any other record. The
// record for it has no key; set its Partition.
func NewCheckpoint(s *Signer, source, topic string, partition int32, offset int64, head string, t time.Time) (Envelope, error) {
	if s == nil {
		return Envelope{}, errors.New("eventlog: no checkpoint signer")
	}
	if !validHash(head) || offset < 0 || partition < 0 {
		return Envelope{}, fmt.Errorf("eventlog: checkpoint of %d@%d: bad head %q", partition, offset, head)
	}
	t = t.UTC()
	sig := ed25519.Sign(s.key, CheckpointMessage(topic, partition, offset, head, t))
	data, err := MarshalData(Checkpoint{
		Partition: partition, Head: head, Offset: offset, KeyID: s.keyID,
		Signature: base64.StdEncoding.EncodeToString(sig), Algorithm: AlgorithmEd25519,
	})
	if err != nil {
		return Envelope{}, fmt.Errorf("eventlog: encode checkpoint: %w", err)
	}
	return Envelope{
		SpecVersion:     SpecVersion,
		ID:              NewID(t),
		Source:          source,
		Type:            TypeCheckpoint,
		Time:            t,
		DataContentType: DataContentTypeJSON,
		Actor:           CheckpointActor,
		PrevHash:        head,
		Data:            data,
	}, nil
}

// DecodeCheckpoint reads the data of a checkpoint envelope strictly:
// unknown or missing fields are refused.
func DecodeCheckpoint(env Envelope) (Checkpoint, error) {
	if env.Type != TypeCheckpoint {
		return Checkpoint{}, fmt.Errorf("%w: type is %q", ErrCheckpoint, env.Type)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(env.Data, &raw); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: data: %w", ErrCheckpoint, err)
	}
	for _, f := range []string{"partition", "head", "offset", "key_id", "signature", "algorithm"} {
		if _, ok := raw[f]; !ok {
			return Checkpoint{}, fmt.Errorf("%w: data.%s is missing", ErrCheckpoint, f)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(env.Data))
	dec.DisallowUnknownFields()
	var c Checkpoint
	if err := dec.Decode(&c); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: data: %w", ErrCheckpoint, err)
	}
	return c, nil
}

// VerifyCheckpoint checks a checkpoint read from partition of topic, whose
// prevhash link the caller has already checked: that it has no subject,
// that data.partition is where it was read and data.head its prevhash,
// and that the signature verifies with the key named by data.key_id and
// was made while that key was valid. headOffset is the offset of the
// record before it (the one whose hash is the prevhash), or -1 if the
// caller does not know it; then data.offset is not checked.
func VerifyCheckpoint(keys *KeyRing, topic string, partition int32, headOffset int64, env Envelope) (Checkpoint, error) {
	c, err := DecodeCheckpoint(env)
	if err != nil {
		return c, err
	}
	switch {
	case env.Subject != "":
		return c, fmt.Errorf("%w: it has a subject (%q); a checkpoint belongs to a partition", ErrCheckpoint, env.Subject)
	case c.Algorithm != AlgorithmEd25519:
		return c, fmt.Errorf("%w: algorithm %q, want %q", ErrCheckpoint, c.Algorithm, AlgorithmEd25519)
	case c.Partition != partition:
		return c, fmt.Errorf("%w: data.partition is %d but it was read from partition %d", ErrCheckpoint, c.Partition, partition)
	case c.Head != env.PrevHash:
		return c, fmt.Errorf("%w: data.head %s differs from its prevhash %s", ErrCheckpoint, c.Head, env.PrevHash)
	case headOffset >= 0 && c.Offset != headOffset:
		return c, fmt.Errorf("%w: data.offset is %d but the record it follows is at offset %d (records were deleted, inserted or moved)", ErrCheckpoint, c.Offset, headOffset)
	}
	k, err := keys.Lookup(c.KeyID, env.Time)
	if err != nil {
		return c, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	sig, err := base64.StdEncoding.DecodeString(c.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return c, fmt.Errorf("%w: signature is not %d bytes of standard base64", ErrCheckpoint, ed25519.SignatureSize)
	}
	if !ed25519.Verify(k, CheckpointMessage(topic, c.Partition, c.Offset, c.Head, env.Time), sig) {
		return c, fmt.Errorf("%w: the Ed25519 signature does not verify with key %q (forged, or the checkpoint was altered)", ErrCheckpoint, c.KeyID)
	}
	return c, nil
}
