package codec

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/eventjson"
	"github.com/assent-dev/assent/libs/wire"
)

// The mapping between the domain's commands and events and their
// CloudEvents envelopes. The domain knows nothing of envelopes; these
// functions are the only place where the two meet.

// EventEnvelope wraps a domain event. The id is a UUIDv7 from the event
// time; prevHash is the chain link that the decider supplies.
func EventEnvelope(e approval.Event, source, prevHash string) (wire.Envelope, error) {
	data, err := wire.MarshalData(e.Body)
	if err != nil {
		return wire.Envelope{}, fmt.Errorf("eventlog: encode %s: %w", e.Body.EventType(), err)
	}
	return wire.Envelope{
		SpecVersion:     wire.SpecVersion,
		ID:              wire.NewID(e.Time),
		Source:          source,
		Type:            e.Body.EventType(),
		Subject:         e.RequestID,
		Time:            e.Time.UTC(),
		DataContentType: wire.DataContentTypeJSON,
		Actor:           e.Actor,
		CommandID:       e.CommandID,
		Sequence:        strconv.Itoa(e.Sequence),
		PrevHash:        prevHash,
		Data:            data,
	}, nil
}

// DomainEvent unwraps an event envelope. Its data is decoded as
// approval.DecodeEventBody decodes it: by eventjson.Decoder.Body when it is
// in the form the deciders write (several times faster: a projection's
// rebuild spent a sixth of its CPU time here), by DecodeEventBody itself
// otherwise, which also says what is wrong with it.
func DomainEvent(env wire.Envelope) (approval.Event, error) {
	d := bodyDecoders.Get().(*eventjson.Decoder)
	body, fast := d.Body(env.Type, env.Data)
	bodyDecoders.Put(d)
	if !fast {
		var err error
		if body, err = approval.DecodeEventBody(env.Type, env.Data); err != nil {
			return approval.Event{}, fmt.Errorf("eventlog: event %s: %w", env.ID, err)
		}
	}
	seq, err := strconv.Atoi(env.Sequence)
	if err != nil || seq < 1 {
		return approval.Event{}, fmt.Errorf("eventlog: event %s: sequence %q is not a positive number", env.ID, env.Sequence)
	}
	return approval.Event{
		RequestID: env.Subject,
		CommandID: env.CommandID,
		Actor:     env.Actor,
		Time:      env.Time,
		Sequence:  seq,
		Body:      body,
	}, nil
}

// bodyDecoders are DomainEvent's decoders, each with its cache of policy
// snapshots, one goroutine's at a time.
var bodyDecoders = sync.Pool{New: func() any { return new(eventjson.Decoder) }}

// CommandEnvelope wraps a domain command. The command id travels in the
// commandid extension; the envelope id is the command id when that is a
// UUIDv7, and a fresh UUIDv7 otherwise, since a
// CloudEvent id is one.
func CommandEnvelope(c approval.Command, source string) (wire.Envelope, error) {
	id := c.ID
	if !isUUIDv7(id) {
		id = wire.NewID(c.Time)
	}
	data, err := wire.MarshalData(c.Body)
	if err != nil {
		return wire.Envelope{}, fmt.Errorf("eventlog: encode %s: %w", c.Body.CommandType(), err)
	}
	return wire.Envelope{
		SpecVersion:     wire.SpecVersion,
		ID:              id,
		Source:          source,
		Type:            c.Body.CommandType(),
		Subject:         c.RequestID,
		Time:            c.Time.UTC(),
		DataContentType: wire.DataContentTypeJSON,
		Actor:           c.Actor,
		CommandID:       c.ID,
		Data:            data,
	}, nil
}

func isUUIDv7(s string) bool {
	if len(s) != 36 || s[14] != '7' {
		return false
	}
	for i, r := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if r != '-' {
				return false
			}
		case (r < '0' || r > '9') && (r < 'a' || r > 'f'):
			return false
		}
	}
	return true
}

// DomainCommand unwraps a command envelope. The command id is the
// commandid extension if present, else the envelope id. When the envelope is sound but
// its data is not, it returns the command without a body and an
// *approval.Refusal, which the decider records as command.rejected.
func DomainCommand(env wire.Envelope) (approval.Command, error) {
	id := env.CommandID
	if id == "" {
		id = env.ID
	}
	c := approval.Command{ID: id, RequestID: env.Subject, Actor: env.Actor, Time: env.Time}
	body, err := approval.DecodeCommandBody(env.Type, env.Data)
	if err != nil {
		return c, err
	}
	c.Body = body
	return c, nil
}
