package eventlog

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/wire"
)

// NewRecord returns a record for topic that carries env in structured mode.
//
// The key is env.Subject, the request id, so that every message about one
// request lands in the same partition (see Partition). An envelope without
// a subject (a log checkpoint, say) gets a nil key; the producer's
// partitioner then uses the record's Partition field, which the caller must
// set.
func NewRecord(topic string, env wire.Envelope) (*kgo.Record, error) {
	value, err := wire.Marshal(env)
	if err != nil {
		return nil, err
	}
	r := &kgo.Record{
		Topic:   topic,
		Value:   value,
		Headers: []kgo.RecordHeader{{Key: wire.HeaderContentType, Value: []byte(wire.ContentType)}},
	}
	if env.Subject != "" {
		r.Key = []byte(env.Subject)
	}
	return r, nil
}

// Produce writes one envelope to topic with cl's guarantees (see
// Config.Opts: acks=all, idempotent, the murmur2 partitioner) and returns
// once Kafka has acknowledged it. headers are added after the
// content-type header (the trace context, say): they are outside the
// record's value, so no hash or signature covers them.
func Produce(ctx context.Context, cl *kgo.Client, topic string, env wire.Envelope, headers ...kgo.RecordHeader) error {
	rec, err := NewRecord(topic, env)
	if err != nil {
		return err
	}
	rec.Headers = append(rec.Headers, headers...)
	return cl.ProduceSync(ctx, rec).FirstErr()
}

// DecodeRecord decodes the envelope in a franz-go record (see
// wire.DecodeRecord for the rules).
func DecodeRecord(r *kgo.Record) (wire.Envelope, error) { return wire.DecodeRecord(WireRecord(r)) }

// WireRecord converts a franz-go record for package wire.
func WireRecord(r *kgo.Record) wire.Record {
	hs := make([]wire.Header, len(r.Headers))
	for i, h := range r.Headers {
		hs[i] = wire.Header{Key: h.Key, Value: h.Value}
	}
	return wire.Record{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Headers: hs,
		Control: r.Attrs.IsControl(), Transactional: r.Attrs.IsTransactional(), ProducerID: r.ProducerID,
	}
}
