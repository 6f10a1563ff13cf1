package eventlog

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/wire"
)

// RecordOf puts an already marshalled envelope on a record for topic, with
// the content-type header; key is the subject (nil for a checkpoint).
func RecordOf(topic string, key, value []byte) *kgo.Record {
	return &kgo.Record{
		Topic:   topic,
		Key:     key,
		Value:   value,
		Headers: []kgo.RecordHeader{{Key: wire.HeaderContentType, Value: []byte(wire.ContentType)}},
	}
}
