package verify

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/wire"
)

// fastDecoder decodes an event record, envelope and data, in one pass and
// with one allocation for its strings, when it is in the form the deciders
// write (wire.Marshal of a codec envelope): attribute and field names
// exactly as the schemas spell them, each once, strings without escapes,
// no null, no unknown attribute or field. It returns the very envelope
// eventlog.DecodeRecord returns and the very body approval.DecodeEventBody
// returns for such a record; for any other record it says so (ok false)
// and the caller decodes it with those, which then report what is wrong.
// So verify is as strict as every other reader of the log, and decodes
// each record once: the chain check, the Authenticator and the domain
// replay share the result.
//
// A request.submitted carries the policy snapshot, the same bytes on every
// request of a policy version but for its expires_at. The decoder keeps
// each snapshot the domain's decoder decoded (bounded, see maxSnapshots),
// with the bytes around its expires_at, and a snapshot with the same bytes
// around a valid expires_at is that snapshot with that expires_at. The
// cached approvers slice is shared by the requests that use it; nothing
// changes it (Decide and Evolve copy before they change a slice).
//
// One fastDecoder per partition: it is not safe for concurrent use.
type fastDecoder struct {
	strs     strBlock
	policies []policyEntry // most recently used first
	members  []span        // scratch for a policy not cached yet

	// Scratch values the strings of one record are assigned into.
	env  wire.Envelope
	sub  approval.RequestSubmitted
	vote approval.VoteRecorded
	appr approval.RequestApproved
	rej  approval.RequestRejected
	canc approval.RequestCancelled
	cr   approval.CommandRejected
	hash string
}

// policyEntry is a snapshot the domain's decoder decoded from
// prefix + expires_at value + suffix.
type policyEntry struct {
	prefix, suffix []byte
	snap           approval.PolicySnapshot // ExpiresAt zero
}

// strBlock gathers the strings of one record and makes them one string.
type strBlock struct {
	buf  []byte
	dsts []*string
	ends []int
}

func (b *strBlock) reset() {
	clear(b.dsts) // after a record left undecoded
	b.buf, b.dsts, b.ends = b.buf[:0], b.dsts[:0], b.ends[:0]
}

func (b *strBlock) add(dst *string, v []byte) {
	b.buf = append(b.buf, v...)
	b.dsts = append(b.dsts, dst)
	b.ends = append(b.ends, len(b.buf))
}

// addJSON adds the contents of a JSON string as str returned them.
func (b *strBlock) addJSON(dst *string, v []byte, esc bool) bool {
	if !esc {
		b.add(dst, v)
		return true
	}
	var ok bool
	if b.buf, ok = unescape(b.buf, v); !ok {
		return false
	}
	b.dsts = append(b.dsts, dst)
	b.ends = append(b.ends, len(b.buf))
	return true
}

// done assigns every string added.
func (b *strBlock) done() {
	s := string(b.buf)
	start := 0
	for k, d := range b.dsts {
		*d = s[start:b.ends[k]]
		start = b.ends[k]
	}
	clear(b.dsts) // keep no pointer into the last record's values
}

// event decodes r, whose value hashes to sum. ok is false when r is not
// in the form fastDecoder reads; then nothing it returns is to be used.
// Seals and notification.recorded events are always left to the full
// decoders.
func (d *fastDecoder) event(r *kgo.Record, sum *[32]byte) (env wire.Envelope, body approval.EventBody, hash string, ok bool) {
	if !canonicalHeaders(r.Headers) {
		return env, nil, "", false
	}
	d.strs.reset()
	d.env = wire.Envelope{}
	var hashBuf [len("sha256:") + 64]byte
	copy(hashBuf[:], "sha256:")
	hex.Encode(hashBuf[len("sha256:"):], sum[:])
	d.strs.add(&d.hash, hashBuf[:])

	v := r.Value
	i := skipWS(v, 0)
	if i >= len(v) || v[i] != '{' {
		return env, nil, "", false
	}
	i++
	var (
		seen    uint16
		rawTime []byte
		subject []byte
		kind    int // of body, once the type is read
		typeOK  bool
	)
	for {
		key, j, ok := member(v, i)
		if !ok {
			return env, nil, "", false
		}
		var bit uint16
		var s []byte
		switch string(key) {
		case "data":
			bit = 1
			if !typeOK || seen&bit != 0 {
				return env, nil, "", false // data before type: not as the deciders write it
			}
			var end int
			body, end, ok = d.body(kind, v, j)
			if !ok {
				return env, nil, "", false
			}
			d.env.Data = v[j:end]
			i = end
		case "specversion", "source", "datacontenttype":
			s, i, ok = plain(v, j)
			if !ok {
				return env, nil, "", false
			}
			switch {
			case string(key) == "specversion" && string(s) == wire.SpecVersion:
				bit, d.env.SpecVersion = 2, wire.SpecVersion
			case string(key) == "datacontenttype" && string(s) == wire.DataContentTypeJSON:
				bit, d.env.DataContentType = 4, wire.DataContentTypeJSON
			case string(key) == "source" && len(s) > 0:
				bit = 8
				d.strs.add(&d.env.Source, s)
			default:
				return env, nil, "", false
			}
		case "type":
			bit = 16
			if s, i, ok = plain(v, j); !ok {
				return env, nil, "", false
			}
			if kind, d.env.Type = bodyKind(s); kind == kindNone {
				return env, nil, "", false // a seal, or a type left to the full decoders
			}
			typeOK = true
		default:
			var dst *string
			switch string(key) {
			case "id":
				bit, dst = 32, &d.env.ID
			case "subject":
				bit, dst = 64, &d.env.Subject
			case "time":
				bit = 128
			case "actor":
				bit, dst = 256, &d.env.Actor
			case "commandid":
				bit, dst = 512, &d.env.CommandID
			case "sequence":
				bit, dst = 1024, &d.env.Sequence
			case "prevhash":
				bit, dst = 2048, &d.env.PrevHash
			default:
				return env, nil, "", false // an extension, authkeyid, authsig, data_base64: the full decoder's
			}
			if s, i, ok = plain(v, j); !ok || len(s) == 0 {
				return env, nil, "", false
			}
			switch bit {
			case 64:
				subject = s
			case 128:
				rawTime = s
			case 1024:
				if !canonicalSequence(s) {
					return env, nil, "", false
				}
			case 2048:
				if !canonicalHash(s) {
					return env, nil, "", false
				}
			}
			if dst != nil {
				d.strs.add(dst, s)
			}
		}
		if seen&bit != 0 {
			return env, nil, "", false
		}
		seen |= bit
		var more bool
		if i, more, ok = after(v, i); !ok {
			return env, nil, "", false
		}
		if !more {
			break
		}
	}
	const required = 1 | 2 | 8 | 16 | 32 | 128 // data, specversion, source, type, id, time
	if skipWS(v, i) != len(v) || seen&required != required {
		return env, nil, "", false
	}
	if len(subject) > 0 && !bytes.Equal(subject, r.Key) {
		return env, nil, "", false
	}
	// wire.Unmarshal parses with time.RFC3339Nano and requires a zero
	// offset; UnmarshalText is the strict RFC 3339 parser that Parse
	// uses first, and whatever it accepts Parse reads the same.
	var t time.Time
	if rawTime[len(rawTime)-1] != 'Z' || t.UnmarshalText(rawTime) != nil {
		return env, nil, "", false
	}
	t = t.UTC()
	if t.IsZero() || t.Year() < 0 || t.Year() > 9999 {
		return env, nil, "", false
	}
	d.env.Time = t
	d.strs.done()
	if body == nil { // the kinds with strings, now assigned
		body = d.box(kind)
	}
	return d.env, body, d.hash, true
}

// The event types fastDecoder decodes.
const (
	kindNone = iota
	kindSubmitted
	kindVote
	kindApproved
	kindRejected
	kindExpired
	kindCancelled
	kindCommandRejected
)

func bodyKind(typ []byte) (int, string) {
	switch string(typ) {
	case approval.TypeRequestSubmitted:
		return kindSubmitted, approval.TypeRequestSubmitted
	case approval.TypeVoteRecorded:
		return kindVote, approval.TypeVoteRecorded
	case approval.TypeRequestApproved:
		return kindApproved, approval.TypeRequestApproved
	case approval.TypeRequestRejected:
		return kindRejected, approval.TypeRequestRejected
	case approval.TypeRequestExpired:
		return kindExpired, approval.TypeRequestExpired
	case approval.TypeRequestCancelled:
		return kindCancelled, approval.TypeRequestCancelled
	case approval.TypeCommandRejected:
		return kindCommandRejected, approval.TypeCommandRejected
	}
	return kindNone, ""
}

// body decodes the data of an event of the given kind at v[i]. The
// strings go to d's scratch values (boxed by box once they are assigned);
// an expiry, which has none, is returned at once.
func (d *fastDecoder) body(kind int, v []byte, i int) (approval.EventBody, int, bool) {
	if i >= len(v) || v[i] != '{' {
		return nil, i, false
	}
	i++
	var seen uint8
	var expired approval.RequestExpired
	switch kind {
	case kindSubmitted:
		d.sub = approval.RequestSubmitted{}
	case kindVote:
		d.vote = approval.VoteRecorded{}
	case kindApproved:
		d.appr = approval.RequestApproved{}
	case kindRejected:
		d.rej = approval.RequestRejected{}
	case kindCancelled:
		d.canc = approval.RequestCancelled{}
	case kindCommandRejected:
		d.cr = approval.CommandRejected{}
	}
	for {
		key, j, ok := member(v, i)
		if !ok {
			return nil, i, false
		}
		var bit uint8
		var dst *string
		var list *[]string
		switch kind {
		case kindSubmitted:
			switch string(key) {
			case "action":
				if i, ok = d.action(v, j); !ok {
					return nil, i, false
				}
				bit = 1
			case "policy":
				if i, ok = d.policy(v, j); !ok {
					return nil, i, false
				}
				bit = 2
			case "reason":
				bit, dst = 4, &d.sub.Reason
			case "requester":
				bit, dst = 8, &d.sub.Requester
			case "content_hash":
				bit, dst = 16, &d.sub.ContentHash
			}
		case kindVote:
			switch string(key) {
			case "voter":
				bit, dst = 1, &d.vote.Voter
			case "decision":
				bit = 2
			case "comment":
				bit, dst = 4, &d.vote.Comment
			}
		case kindApproved:
			if string(key) == "approvers" {
				bit, list = 1, &d.appr.Approvers
			}
		case kindRejected:
			switch string(key) {
			case "rejecters":
				bit, list = 1, &d.rej.Rejecters
			case "comment":
				bit, dst = 2, &d.rej.Comment
			}
		case kindExpired:
			if string(key) == "expires_at" {
				bit = 1
				s, end, ok := plain(v, j)
				// time.Time's UnmarshalJSON, as the domain's decoder calls it.
				if !ok || len(s) == 0 || expired.ExpiresAt.UnmarshalJSON(v[j:end]) != nil {
					return nil, i, false
				}
				i = end
			}
		case kindCancelled:
			switch string(key) {
			case "by":
				bit, dst = 1, &d.canc.By
			case "reason":
				bit, dst = 2, &d.canc.Reason
			}
		case kindCommandRejected:
			switch string(key) {
			case "command_id":
				bit, dst = 1, &d.cr.CommandID
			case "command_type":
				bit, dst = 2, &d.cr.CommandType
			case "code":
				bit = 4
			case "detail":
				bit, dst = 8, &d.cr.Detail
			}
		}
		if bit == 0 || seen&bit != 0 {
			return nil, i, false // an unknown field (the domain's decoder refuses it) or a repeated one
		}
		seen |= bit
		switch {
		case dst != nil:
			var s []byte
			var esc bool
			if s, i, esc, ok = str(v, j); !ok || !d.strs.addJSON(dst, s, esc) {
				return nil, i, false
			}
		case list != nil:
			if i, ok = d.strList(list, v, j); !ok {
				return nil, i, false
			}
		case kind == kindVote && bit == 2:
			var s []byte
			if s, i, ok = plain(v, j); !ok {
				return nil, i, false
			}
			switch approval.VoteDecision(s) {
			case approval.Approve:
				d.vote.Decision = approval.Approve
			case approval.Reject:
				d.vote.Decision = approval.Reject
			default:
				return nil, i, false // for the full decoder (Decide refuses it)
			}
		case kind == kindCommandRejected && bit == 4:
			var s []byte
			if s, i, ok = plain(v, j); !ok {
				return nil, i, false
			}
			code, known := reasonCode(s)
			if !known {
				return nil, i, false
			}
			d.cr.Code = code
		}
		var more bool
		if i, more, ok = after(v, i); !ok {
			return nil, i, false
		}
		if !more {
			break
		}
	}
	if kind == kindExpired {
		return expired, i, true
	}
	return nil, i, true
}

// box returns the body of the given kind from d's scratch values, once
// their strings are assigned.
func (d *fastDecoder) box(kind int) approval.EventBody {
	switch kind {
	case kindSubmitted:
		return d.sub
	case kindVote:
		return d.vote
	case kindApproved:
		return d.appr
	case kindRejected:
		return d.rej
	case kindCancelled:
		return d.canc
	case kindCommandRejected:
		return d.cr
	}
	return nil
}

var reasonCodes = approval.ReasonCodes()

func reasonCode(s []byte) (approval.ReasonCode, bool) {
	for _, c := range reasonCodes {
		if string(c) == string(s) {
			return c, true
		}
	}
	return "", false
}

// action decodes a request.submitted's action at v[i].
func (d *fastDecoder) action(v []byte, i int) (int, bool) {
	if i >= len(v) || v[i] != '{' {
		return i, false
	}
	i++
	var seen uint8
	a := &d.sub.Action
	for {
		key, j, ok := member(v, i)
		if !ok {
			return i, false
		}
		var bit uint8
		var dst *string
		switch string(key) {
		case "type":
			bit, dst = 1, &a.Type
		case "resource":
			bit, dst = 2, &a.Resource
		case "environment":
			bit, dst = 4, &a.Environment
		case "digest":
			bit, dst = 8, &a.Digest
		default: // details (kept as raw JSON) and unknown fields: the full decoder's
			return i, false
		}
		if seen&bit != 0 {
			return i, false
		}
		seen |= bit
		var s []byte
		var esc bool
		if s, i, esc, ok = str(v, j); !ok || !d.strs.addJSON(dst, s, esc) {
			return i, false
		}
		var more bool
		if i, more, ok = after(v, i); !ok {
			return i, false
		}
		if !more {
			return i, true
		}
	}
}

// strList decodes an array of strings at v[i] into *dst.
func (d *fastDecoder) strList(dst *[]string, v []byte, i int) (int, bool) {
	if i >= len(v) || v[i] != '[' {
		return i, false
	}
	i = skipWS(v, i+1)
	if i < len(v) && v[i] == ']' {
		*dst = []string{} // as encoding/json decodes [], not nil
		return i + 1, true
	}
	// Count first, so that the strings' destinations stay put.
	n, k := 0, i
	for {
		_, end, _, ok := str(v, skipWS(v, k))
		if !ok {
			return i, false
		}
		n++
		k = skipWS(v, end)
		if k < len(v) && v[k] == ',' {
			k++
			continue
		}
		if k < len(v) && v[k] == ']' {
			break
		}
		return i, false
	}
	list := make([]string, n)
	for m := range n {
		s, end, esc, _ := str(v, skipWS(v, i))
		if !d.strs.addJSON(&list[m], s, esc) {
			return i, false
		}
		i = skipWS(v, end) + 1 // past ',' or ']'
	}
	*dst = list
	return i, true
}

// policy decodes a request.submitted's policy snapshot at v[i].
func (d *fastDecoder) policy(v []byte, i int) (int, bool) {
	for k := range d.policies {
		e := &d.policies[k]
		if !bytes.HasPrefix(v[i:], e.prefix) {
			continue
		}
		j := i + len(e.prefix)
		s, end, ok := plain(v, j)
		if !ok || len(s) == 0 || !bytes.HasPrefix(v[end:], e.suffix) {
			continue
		}
		snap := e.snap
		if snap.ExpiresAt.UnmarshalJSON(v[j:end]) != nil {
			return i, false
		}
		d.sub.Policy = snap
		if k > 0 { // most recently used first
			hit := *e
			copy(d.policies[1:k+1], d.policies[:k])
			d.policies[0] = hit
		}
		return end + len(e.suffix), true
	}
	// Not cached: the domain's decoder decodes it, and the snapshot is kept
	// if its expires_at can be told apart from the rest.
	end, err := skipValue(v, i, 0)
	if err != nil {
		return i, false
	}
	p := v[i:end]
	ms, ok := members(p, d.members[:0])
	d.members = ms[:0]
	if !ok {
		return i, false
	}
	em, ok := find(ms, "expires_at")
	if !ok || p[em.start] != '"' {
		return i, false
	}
	var expires time.Time
	if expires.UnmarshalJSON(p[em.start:em.end]) != nil {
		return i, false
	}
	var full approval.PolicySnapshot
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&full); err != nil || !full.ExpiresAt.Equal(expires) {
		return i, false
	}
	d.sub.Policy = full
	snap := full
	snap.ExpiresAt = time.Time{}
	if len(d.policies) >= maxSnapshots {
		d.policies = d.policies[:maxSnapshots-1]
	}
	d.policies = append([]policyEntry{{prefix: bytes.Clone(p[:em.start]), suffix: bytes.Clone(p[em.end:]), snap: snap}}, d.policies...)
	return end, true
}

// member reads `"name":` at v[i] (after an object's '{' or a ','), and
// returns the name and where its value starts.
func member(v []byte, i int) ([]byte, int, bool) {
	key, j, ok := plain(v, skipWS(v, i))
	if !ok {
		return nil, i, false
	}
	j = skipWS(v, j)
	if j >= len(v) || v[j] != ':' {
		return nil, i, false
	}
	return key, skipWS(v, j+1), true
}

// after reads what follows a member's value at v[i]: more is true after a
// ',' and false after the object's closing '}'.
func after(v []byte, i int) (j int, more, ok bool) {
	i = skipWS(v, i)
	if i < len(v) {
		switch v[i] {
		case ',':
			return i + 1, true, true
		case '}':
			return i + 1, false, true
		}
	}
	return i, false, false
}

// str reads the JSON string at v[i] and returns its contents as they
// are in v, the index after it, and whether it has escapes. ok is false
// for a control character, bytes that are not UTF-8 (encoding/json would
// replace them) or an unterminated string.
//
// It reads eight bytes at a time while none of them is a quote, a
// backslash, a control character or a non-ASCII byte (see special).
func str(v []byte, i int) (s []byte, j int, esc, ok bool) {
	if i >= len(v) || v[i] != '"' {
		return nil, i, false, false
	}
	start, k := i+1, i+1
	ascii := true
	for {
		for k+8 <= len(v) && special(binary.LittleEndian.Uint64(v[k:])) == 0 {
			k += 8
		}
		if k >= len(v) {
			return nil, i, false, false
		}
		switch c := v[k]; {
		case c == '"':
			s = v[start:k]
			if !ascii && !utf8.Valid(s) {
				return nil, i, false, false
			}
			return s, k + 1, esc, true
		case c == '\\':
			if k+1 >= len(v) {
				return nil, i, false, false
			}
			esc = true
			k += 2 // the escaped character, whatever it is (unescape checks it)
			continue
		case c < 0x20:
			return nil, i, false, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		k++
	}
}

// special is non-zero when one of the eight bytes in x is a quote, a
// backslash, below 0x20 or above 0x7f (the classic "has zero byte" and
// "has byte less than" bit tricks; it has no false negatives, and a
// false positive only sends the word to the byte-by-byte loop).
func special(x uint64) uint64 {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	q := x ^ (ones * '"')
	b := x ^ (ones * '\\')
	return ((q-ones)&^q | (b-ones)&^b | (x-ones*0x20)&^x | x) & highs
}

// plain is str for a string without escapes.
func plain(v []byte, i int) ([]byte, int, bool) {
	s, j, esc, ok := str(v, i)
	return s, j, ok && !esc
}

// unescape appends the decoded contents of a JSON string, s as str
// returned it, to dst. It decodes the one-character escapes; ok is false
// for a \u escape (left to encoding/json, with its surrogate rules) or an
// invalid one.
func unescape(dst, s []byte) ([]byte, bool) {
	for {
		k := bytes.IndexByte(s, '\\')
		if k < 0 {
			return append(dst, s...), true
		}
		dst = append(dst, s[:k]...)
		if k+1 >= len(s) {
			return dst, false
		}
		var c byte
		switch s[k+1] {
		case '"', '\\', '/':
			c = s[k+1]
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		default:
			return dst, false
		}
		dst = append(dst, c)
		s = s[k+2:]
	}
}

// canonicalHeaders reports whether the record has exactly one
// content-type header, and it is exactly wire.ContentType.
func canonicalHeaders(hs []kgo.RecordHeader) bool {
	n := 0
	for _, h := range hs {
		if h.Key == wire.HeaderContentType {
			if string(h.Value) != wire.ContentType {
				return false
			}
			n++
		}
	}
	return n == 1
}

// canonicalSequence is wire's rule: a decimal number from 1 that fits in
// a uint64, no sign, no leading zero.
func canonicalSequence(s []byte) bool {
	if len(s) == 0 || len(s) > 19 || s[0] == '0' { // 19 digits always fit
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// canonicalHash is wire's rule for a prevhash: "sha256:" and 64
// lowercase hex digits.
func canonicalHash(s []byte) bool {
	rest, ok := bytes.CutPrefix(s, []byte("sha256:"))
	if !ok || len(rest) != 64 {
		return false
	}
	for _, c := range rest {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
