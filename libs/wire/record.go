package wire

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
)

// ContentType is the content-type header value of a structured-mode
// CloudEvents record (CloudEvents Kafka protocol binding, section 3.3).
const ContentType = "application/cloudevents+json"

// HeaderContentType is the record header that carries ContentType.
const HeaderContentType = "content-type"

// ErrContentType is wrapped by DecodeRecord when a record does not say that
// it is a structured-mode CloudEvent.
var ErrContentType = errors.New("wire: record is not a structured CloudEvent")

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is a Kafka record as this package sees it: where it sits, its
// key, headers and value. Package eventlog converts franz-go's records.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	// Control marks a transaction marker (commit or abort), which carries
	// no event.
	Control bool
	// Transactional marks a record written inside a Kafka transaction;
	// ProducerID names the producer that wrote it.
	Transactional bool
	ProducerID    int64
}

// Where names the record for error messages: topic/partition@offset.
func (r Record) Where() string { return fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset) }

// DecodeRecord decodes the envelope in a record that eventlog.NewRecord
// (or any CloudEvents structured-mode producer) wrote.
//
// It requires exactly one content-type header whose media type is
// application/cloudevents+json (parameters such as charset are allowed),
// and a key equal to the subject when there is a subject: a record keyed by
// anything else sits in the wrong partition. Errors wrap ErrContentType or
// ErrInvalidEnvelope and name the record's topic, partition and offset.
func DecodeRecord(r Record) (Envelope, error) {
	where := r.Where()
	var ct []byte
	n := 0
	for _, h := range r.Headers {
		if h.Key == HeaderContentType {
			ct = h.Value
			n++
		}
	}
	switch n {
	case 0:
		return Envelope{}, fmt.Errorf("%w: %s has no %s header; want %s (structured mode)", ErrContentType, where, HeaderContentType, ContentType)
	case 1:
	default:
		return Envelope{}, fmt.Errorf("%w: %s has %d %s headers; want one", ErrContentType, where, n, HeaderContentType)
	}
	if string(ct) != ContentType { // what eventlog writes is its own media type
		if mt, _, err := mime.ParseMediaType(string(ct)); err != nil || mt != ContentType {
			return Envelope{}, fmt.Errorf("%w: %s has %s %q; want %s (structured mode)", ErrContentType, where, HeaderContentType, ct, ContentType)
		}
	}
	env, err := Unmarshal(r.Value)
	if err != nil {
		return Envelope{}, fmt.Errorf("%s: %w", where, err)
	}
	if env.Subject != "" && !bytes.Equal(r.Key, []byte(env.Subject)) {
		return Envelope{}, fmt.Errorf("%w: %s: key %q differs from subject %q", ErrInvalidEnvelope, where, r.Key, env.Subject)
	}
	return env, nil
}
