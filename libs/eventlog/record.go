package eventlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ContentType is the content-type header value of a structured-mode
// CloudEvents record (CloudEvents Kafka protocol binding, section 3.3).
const ContentType = "application/cloudevents+json"

// HeaderContentType is the record header that carries ContentType.
const HeaderContentType = "content-type"

// ErrContentType is wrapped by DecodeRecord when a record does not say that
// it is a structured-mode CloudEvent.
var ErrContentType = errors.New("eventlog: record is not a structured CloudEvent")

// NewRecord returns a record for topic that carries env in structured mode.
//
// The key is env.Subject, the request id, so that every message about one
// request lands in the same partition (see Partition). An envelope without
// a subject (a log checkpoint, say) gets a nil key; the producer's
// partitioner then uses the record's Partition field, which the caller must
// set.
func NewRecord(topic string, env Envelope) (*kgo.Record, error) {
	value, err := Marshal(env)
	if err != nil {
		return nil, err
	}
	r := &kgo.Record{
		Topic:   topic,
		Value:   value,
		Headers: []kgo.RecordHeader{{Key: HeaderContentType, Value: []byte(ContentType)}},
	}
	if env.Subject != "" {
		r.Key = []byte(env.Subject)
	}
	return r, nil
}

// Produce writes one envelope to topic with cl's guarantees (see
// Config.Opts: acks=all, idempotent, the murmur2 partitioner) and returns
// once Kafka has acknowledged it.
func Produce(ctx context.Context, cl *kgo.Client, topic string, env Envelope) error {
	rec, err := NewRecord(topic, env)
	if err != nil {
		return err
	}
	return cl.ProduceSync(ctx, rec).FirstErr()
}

// DecodeRecord decodes the envelope in a record that NewRecord (or any
// CloudEvents structured-mode producer) wrote.
//
// It requires exactly one content-type header whose media type is
// application/cloudevents+json (parameters such as charset are allowed),
// and a key equal to the subject when there is a subject: a record keyed by
// anything else sits in the wrong partition. Errors wrap ErrContentType or
// ErrInvalidEnvelope and name the record's topic, partition and offset.
func DecodeRecord(r *kgo.Record) (Envelope, error) {
	where := fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset)
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
	if mt, _, err := mime.ParseMediaType(string(ct)); err != nil || mt != ContentType {
		return Envelope{}, fmt.Errorf("%w: %s has %s %q; want %s (structured mode)", ErrContentType, where, HeaderContentType, ct, ContentType)
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
