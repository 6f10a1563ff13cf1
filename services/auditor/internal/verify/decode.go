package verify

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/assent-dev/assent/libs/approval"
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
	// while the Authenticator holds the records (see fastDecoder).
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

// span is one member of a JSON object: where its value starts and ends.
type span struct {
	key        []byte
	start, end int
}

// members lists the members of the JSON object v; ok is false when v is
// not one, or a name has an escape or appears twice.
func members(v []byte, out []span) ([]span, bool) {
	i := skipWS(v, 0)
	if i >= len(v) || v[i] != '{' {
		return nil, false
	}
	i = skipWS(v, i+1)
	if i < len(v) && v[i] == '}' {
		return out, skipWS(v, i+1) == len(v)
	}
	for {
		key, j, esc, err := scanString(v, skipWS(v, i))
		if err != nil || esc {
			return nil, false
		}
		for _, m := range out {
			if bytes.EqualFold(m.key, key) { // the decoder matches names regardless of case
				return nil, false
			}
		}
		i = skipWS(v, j)
		if i >= len(v) || v[i] != ':' {
			return nil, false
		}
		start := skipWS(v, i+1)
		end, err := skipValue(v, start, 0)
		if err != nil {
			return nil, false
		}
		out = append(out, span{key: key, start: start, end: end})
		i = skipWS(v, end)
		switch {
		case i < len(v) && v[i] == ',':
			i++
		case i < len(v) && v[i] == '}':
			return out, skipWS(v, i+1) == len(v)
		default:
			return nil, false
		}
	}
}

func find(ms []span, name string) (span, bool) {
	for _, m := range ms {
		if string(m.key) == name {
			return m, true
		}
	}
	return span{}, false
}

// submitted decodes a request.submitted with its snapshot from the cache;
// ok is false when the full decoder must do it.
func (d *bodies) submitted(data []byte) (approval.EventBody, bool) {
	var buf [8]span
	top, ok := members(data, buf[:0])
	if !ok {
		return nil, false
	}
	pm, ok := find(top, "policy")
	if !ok {
		return nil, false
	}
	policy := data[pm.start:pm.end]
	var pbuf [12]span
	ps, ok := members(policy, pbuf[:0])
	if !ok {
		return nil, false
	}
	em, ok := find(ps, "expires_at")
	if !ok {
		return nil, false
	}
	var expires time.Time
	if err := expires.UnmarshalJSON(policy[em.start:em.end]); err != nil {
		return nil, false
	}
	// The key is the snapshot without the value of its expires_at.
	d.key = append(append(d.key[:0], policy[:em.start]...), policy[em.end:]...)
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
	d.rest = append(append(append(d.rest[:0], data[:pm.start]...), "{}"...), data[pm.end:]...)
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
