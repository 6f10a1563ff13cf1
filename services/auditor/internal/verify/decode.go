package verify

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/eventjson"
)

// bodies decodes the events' data for the domain replay with the
// domain's own decoder (approval.DecodeEventBody, strict), once per
// event. A request.submitted is most of the cost: it carries the policy
// snapshot, whose approvers are the same on every request of a policy. So
// bodies decodes each distinct snapshot once (everything but its
// expires_at, which differs on every request) and the rest of the event
// on its own. The result is the same as decoding the whole event: the
// same bytes decode to the same value, and anything unusual (a repeated
// or escaped attribute name) goes to the full decoder.
//
// The cached snapshots' slices are shared by the events that use them;
// nothing changes them (Decide and Evolve copy before they change a
// slice). One bodies per partition: it is not safe for concurrent use.
//
// The bodies of votes and decisions hold only who voted or decided and
// how (a comment aside), so the same bytes recur on many requests: those
// are decoded once per distinct value too (by, not per event). A cached
// value is what the decoder returned for the very same bytes of the same
// type; only values that decoded without error are kept.
type bodies struct {
	snapshots map[string]approval.PolicySnapshot
	key, rest []byte // reused buffers
	by        map[string]map[string]approval.EventBody
	byCount   int

	// The data the fast decoder decoded with the envelope, by offset,
	// while the Authenticator holds the records (see eventjson.Decoder).
	q    []decodedBody
	head int
}

const (
	// maxSnapshots bounds the cache: policies are few, and their versions.
	maxSnapshots = 256
	// maxBodies bounds the cache of votes' and decisions' bodies, and
	// maxBodyLen the size of one: beyond, they are decoded every time.
	maxBodies  = 4096
	maxBodyLen = 512
)

func (d *bodies) decode(typ string, data []byte) (approval.EventBody, error) {
	switch typ {
	case approval.TypeRequestSubmitted:
		if b, ok := d.submitted(data); ok {
			return b, nil
		}
	case approval.TypeVoteRecorded, approval.TypeRequestApproved, approval.TypeRequestRejected:
		if len(data) <= maxBodyLen {
			return d.cached(typ, data)
		}
	}
	return approval.DecodeEventBody(typ, data)
}

// cached decodes data of type typ once per distinct value.
func (d *bodies) cached(typ string, data []byte) (approval.EventBody, error) {
	if b, ok := d.by[typ][string(data)]; ok {
		return b, nil
	}
	b, err := approval.DecodeEventBody(typ, data)
	if err != nil {
		return b, err
	}
	if d.by == nil || d.byCount >= maxBodies {
		d.by, d.byCount = map[string]map[string]approval.EventBody{}, 0
	}
	m := d.by[typ]
	if m == nil {
		m = map[string]approval.EventBody{}
		d.by[typ] = m
	}
	m[string(data)] = b
	d.byCount++
	return b, nil
}

// submitted decodes a request.submitted with its snapshot from the cache;
// ok is false when the full decoder must do it.
func (d *bodies) submitted(data []byte) (approval.EventBody, bool) {
	var buf [8]eventjson.Span
	top, ok := eventjson.Members(data, buf[:0])
	if !ok {
		return nil, false
	}
	pm, ok := eventjson.Find(top, "policy")
	if !ok {
		return nil, false
	}
	policy := data[pm.Start:pm.End]
	var pbuf [12]eventjson.Span
	ps, ok := eventjson.Members(policy, pbuf[:0])
	if !ok {
		return nil, false
	}
	em, ok := eventjson.Find(ps, "expires_at")
	if !ok {
		return nil, false
	}
	var expires time.Time
	if err := expires.UnmarshalJSON(policy[em.Start:em.End]); err != nil {
		return nil, false
	}
	// The key is the snapshot without the value of its expires_at.
	d.key = append(append(d.key[:0], policy[:em.Start]...), policy[em.End:]...)
	snap, hit := d.snapshots[string(d.key)]
	if !hit {
		var full approval.PolicySnapshot
		dec := json.NewDecoder(bytes.NewReader(policy))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&full); err != nil || !full.ExpiresAt.Equal(expires) {
			return nil, false
		}
		snap = full
		snap.ExpiresAt = time.Time{}
		if d.snapshots == nil || len(d.snapshots) >= maxSnapshots {
			d.snapshots = map[string]approval.PolicySnapshot{}
		}
		d.snapshots[string(d.key)] = snap
	}
	// The rest of the event, with an empty policy in place of the snapshot.
	d.rest = append(append(append(d.rest[:0], data[:pm.Start]...), "{}"...), data[pm.End:]...)
	body, err := approval.DecodeEventBody(approval.TypeRequestSubmitted, d.rest)
	if err != nil {
		return nil, false
	}
	b, ok := body.(approval.RequestSubmitted)
	if !ok || b.Policy.Name != "" || b.Policy.Approvers != nil {
		return nil, false
	}
	b.Policy = snap
	b.Policy.ExpiresAt = expires
	return b, true
}
