package eventjson

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"slices"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/wire"
)

// Decoder decodes events in the form the deciders write (wire.Marshal of
// a codec envelope): attribute and field names as the schemas spell them,
// each once, no null, no unknown attribute or field, strings without \u
// escapes. Event decodes a whole record, envelope and data, in one pass,
// to the very envelope eventlog.DecodeRecord returns and the very body
// approval.DecodeEventBody returns; Body decodes an event's data alone, to
// what approval.DecodeEventBody returns. For anything else they say so
// (ok false) and the caller decodes it with those, which then report what
// is wrong. So a reader that uses Decoder is as strict as every other
// reader of the log: auditor verify decodes each record once with Event
// (its chain check, Authenticator and domain replay share the result);
// codec.DomainEvent decodes the data of every event with Body.
//
// It expects the names in the order Marshal writes them, and reads them
// in full only when they are not. The strings Event returns share the
// record's value (see view); the hashes share a buffer of their own.
//
// A request.submitted carries the policy snapshot, the same bytes on every
// request of a policy version but for its expires_at. The decoder keeps
// each snapshot the domain's decoder decoded (bounded, see maxSnapshots),
// with the bytes around its expires_at, and a snapshot with the same bytes
// around a valid expires_at is that snapshot with that expires_at. Event
// shares the cached approvers slice between the requests that use it
// (nothing in verify changes it: Decide and Evolve copy before they change
// a slice); Body gives each request a copy of the snapshot's slices.
//
// It is not safe for concurrent use: one Decoder per partition (verify), or
// one from a pool at a time (codec).
type Decoder struct {
	policies []policyEntry // most recently used first
	members  []Span        // scratch for a policy not cached yet
	hashes   []byte        // where HashString writes (see there)
	// Last is the hash of the partition's previous record, which the
	// caller of Event sets: the next record's prevhash, as a rule.
	Last string
}

// maxSnapshots bounds the cache: policies are few, and their versions.
const maxSnapshots = 256

// policyEntry is a snapshot the domain's decoder decoded from
// prefix + expires_at value + suffix.
type policyEntry struct {
	prefix, suffix []byte
	snap           approval.PolicySnapshot // ExpiresAt zero
}

// view returns b as a string without copying it. Every b is part of a
// record's value, which nothing changes once read (verify's logread hands
// each value over once, franz-go allocates it), or of Body's own copy of
// an event's data, so the string never changes either. The strings of an
// event keep its value alive while the Authenticator or the replay holds
// them, which they do anyway; the one string verify keeps for long, a
// request id as a map key, is copied (verify's chain.sequence).
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b)) //nolint:gosec // G103: b is never written after this (see above)
}

// HashString returns "sha256:" and the hex digits of sum. The strings
// share chunks of one buffer that is only ever appended to, so a string
// never changes; a chunk lives as long as a hash in it is held.
func (d *Decoder) HashString(sum *[32]byte) string {
	const n = len("sha256:") + 2*len(sum)
	if cap(d.hashes)-len(d.hashes) < n {
		d.hashes = make([]byte, 0, 512*n)
	}
	start := len(d.hashes)
	d.hashes = append(d.hashes, "sha256:"...)
	d.hashes = d.hashes[:start+n]
	hex.Encode(d.hashes[start+len("sha256:"):], sum[:])
	return view(d.hashes[start:])
}

// The attributes of an envelope, in the order wire.Marshal writes them,
// as they start a member.
var envNames = []string{`"specversion":`, `"id":`, `"source":`, `"type":`, `"subject":`, `"time":`, `"datacontenttype":`,
	`"actor":`, `"commandid":`, `"sequence":`, `"prevhash":`, `"data":`}

const (
	envSpecVersion = iota
	envID
	envSource
	envType
	envSubject
	envTime
	envDataContentType
	envActor
	envCommandID
	envSequence
	envPrevHash
	envData
)

// Event decodes r. ok is false when r is not
// in the form Decoder reads; then nothing it returns is to be used.
// A seal's body is nil (wire.VerifySeal decodes its data);
// notification.recorded events are always left to the full decoders.
func (d *Decoder) Event(r *kgo.Record) (env wire.Envelope, body approval.EventBody, ok bool) {
	if !canonicalHeaders(r.Headers) {
		return env, nil, false
	}
	v := r.Value
	i := skipWS(v, 0)
	if i >= len(v) || v[i] != '{' {
		return env, nil, false
	}
	i++
	var (
		seen    uint32
		next    int
		rawTime []byte
		subject []byte
		kind    int // of body, once the type is read
	)
	for {
		k, j, ok := keyAt(v, i, envNames, &next)
		if !ok || k < 0 || seen&(1<<k) != 0 {
			return env, nil, false // an extension, authkeyid, authsig, data_base64, a repeat: the full decoder's
		}
		seen |= 1 << k
		var s []byte
		switch k {
		case envData:
			if kind == kindNone {
				return env, nil, false // data before type: not as the deciders write it
			}
			var end int
			if body, end, ok = d.body(kind, v, j); !ok {
				return env, nil, false
			}
			env.Data = v[j:end]
			i = end
		case envPrevHash:
			if n := len(d.Last); n > 0 && j+n+2 <= len(v) && v[j] == '"' && string(v[j+1:j+1+n]) == d.Last && v[j+1+n] == '"' {
				env.PrevHash, i = d.Last, j+n+2 // the usual link: no need to check it is a hash
				break
			}
			if s, i, ok = plain(v, j); !ok || !canonicalHash(s) {
				return env, nil, false
			}
			env.PrevHash = view(s)
		default:
			if s, i, ok = plain(v, j); !ok || len(s) == 0 {
				return env, nil, false // escapes and empty attributes: the full decoder's
			}
			switch k {
			case envSpecVersion:
				if string(s) != wire.SpecVersion {
					return env, nil, false
				}
				env.SpecVersion = wire.SpecVersion
			case envDataContentType:
				if string(s) != wire.DataContentTypeJSON {
					return env, nil, false
				}
				env.DataContentType = wire.DataContentTypeJSON
			case envType:
				if kind, env.Type = bodyKind(view(s)); kind == kindNone {
					return env, nil, false // a seal, or a type left to the full decoders
				}
			case envTime:
				rawTime = s
			case envSequence:
				if !canonicalSequence(s) {
					return env, nil, false
				}
				env.Sequence = view(s)
			case envSubject:
				subject, env.Subject = s, view(s)
			case envID:
				env.ID = view(s)
			case envSource:
				env.Source = view(s)
			case envActor:
				env.Actor = view(s)
			case envCommandID:
				env.CommandID = view(s)
			}
		}
		var more bool
		if i, more, ok = after(v, i); !ok {
			return env, nil, false
		}
		if !more {
			break
		}
	}
	const required = 1<<envData | 1<<envSpecVersion | 1<<envSource | 1<<envType | 1<<envID | 1<<envTime
	if skipWS(v, i) != len(v) || seen&required != required {
		return env, nil, false
	}
	if len(subject) > 0 && !bytes.Equal(subject, r.Key) {
		return env, nil, false
	}
	// wire.Unmarshal parses with time.RFC3339Nano and requires a zero
	// offset; UnmarshalText is the strict RFC 3339 parser that Parse
	// tries first, and whatever it accepts Parse reads the same.
	var t time.Time
	if rawTime[len(rawTime)-1] != 'Z' || t.UnmarshalText(rawTime) != nil {
		return env, nil, false
	}
	t = t.UTC()
	if t.IsZero() || t.Year() < 0 || t.Year() > 9999 {
		return env, nil, false
	}
	env.Time = t
	return env, body, true
}

// Body decodes the data of an event of type typ, as approval.DecodeEventBody
// does, when it is in the form the deciders write; ok is false otherwise
// (and for a type Body leaves to that decoder: notification.recorded, a
// seal's). Its strings share one copy of data, never data itself, and a
// request.submitted's approvers and notify targets are slices of its own,
// so the body is the caller's to keep and change, as DecodeEventBody's is.
func (d *Decoder) Body(typ string, data []byte) (approval.EventBody, bool) {
	kind, _ := bodyKind(typ)
	if kind == kindNone || kind == kindSeal {
		return nil, false
	}
	v := bytes.Clone(data)
	body, end, ok := d.body(kind, v, skipWS(v, 0))
	if !ok || skipWS(v, end) != len(v) {
		return nil, false
	}
	if b, submitted := body.(approval.RequestSubmitted); submitted {
		// The cached snapshot's slices, copied: the body is the caller's.
		b.Policy.Approvers = slices.Clone(b.Policy.Approvers)
		if b.Policy.Notify != nil {
			b.Policy.Notify = slices.Clone(b.Policy.Notify)
			for i := range b.Policy.Notify {
				b.Policy.Notify[i].Events = slices.Clone(b.Policy.Notify[i].Events)
			}
		}
		return b, true
	}
	return body, true
}

// keyAt reads the name of the member at v[i] (after an object's '{' or a
// ','): it tries names from *next on (the order they are written in)
// before it reads the name in full. It returns the index of the name in
// names, -1 for another name, and where the member's value starts.
func keyAt(v []byte, i int, names []string, next *int) (int, int, bool) {
	i = skipWS(v, i)
	for k := *next; k < len(names); k++ {
		if n := names[k]; len(v)-i >= len(n) && string(v[i:i+len(n)]) == n {
			*next = k + 1
			return k, skipWS(v, i+len(n)), true
		}
	}
	key, j, ok := member(v, i)
	if !ok {
		return -1, i, false
	}
	for k, n := range names {
		if len(n) == len(key)+3 && n[1:len(n)-2] == string(key) {
			return k, j, true
		}
	}
	return -1, j, true
}

// object reads the object at v[i], whose members may be named names (in
// that order, as a rule), each at most once. field reads the value of
// member names[k] at v[j] and returns the index after it. object returns
// the index after the object and which members it read (bit k for
// names[k]).
func object(v []byte, i int, names []string, field func(k, j int) (int, bool)) (int, uint32, bool) {
	if i >= len(v) || v[i] != '{' {
		return i, 0, false
	}
	i++
	var seen uint32
	next := 0
	for {
		k, j, ok := keyAt(v, i, names, &next)
		if !ok || k < 0 || seen&(1<<k) != 0 {
			return i, seen, false // an unknown field (the domain's decoder refuses it) or a repeated one
		}
		seen |= 1 << k
		if i, ok = field(k, j); !ok {
			return i, seen, false
		}
		var more bool
		if i, more, ok = after(v, i); !ok {
			return i, seen, false
		}
		if !more {
			return i, seen, true
		}
	}
}

// The event types Decoder decodes.
const (
	kindNone = iota
	kindSubmitted
	kindVote
	kindApproved
	kindRejected
	kindExpired
	kindCancelled
	kindCommandRejected
	kindSeal // no domain body: its data is only checked to be JSON here (wire.VerifySeal reads it)
)

func bodyKind(typ string) (int, string) {
	switch typ {
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
	case wire.TypeSeal:
		return kindSeal, wire.TypeSeal
	}
	return kindNone, ""
}

// The fields of the event bodies, in the order encoding/json writes them.
var (
	submittedNames = []string{`"action":`, `"reason":`, `"requester":`, `"content_hash":`, `"policy":`}
	actionNames    = []string{`"type":`, `"resource":`, `"environment":`, `"digest":`}
	voteNames      = []string{`"voter":`, `"decision":`, `"comment":`}
	approvedNames  = []string{`"approvers":`}
	rejectedNames  = []string{`"rejecters":`, `"comment":`}
	expiredNames   = []string{`"expires_at":`}
	cancelledNames = []string{`"by":`, `"reason":`}
	refusalNames   = []string{`"command_id":`, `"command_type":`, `"code":`, `"detail":`}
	sealNames      = []string{`"partition":`, `"from":`, `"head":`, `"count":`, `"key_id":`, `"signature":`, `"algorithm":`}
)

// body decodes the data of an event of the given kind at v[i].
func (d *Decoder) body(kind int, v []byte, i int) (approval.EventBody, int, bool) {
	var (
		end int
		ok  bool
	)
	switch kind {
	case kindSubmitted:
		var b approval.RequestSubmitted
		end, _, ok = object(v, i, submittedNames, func(k, j int) (int, bool) {
			switch k {
			case 0:
				return d.action(&b.Action, v, j)
			case 1:
				return text(&b.Reason, v, j)
			case 2:
				return text(&b.Requester, v, j)
			case 3:
				return text(&b.ContentHash, v, j)
			default:
				return d.policy(&b.Policy, v, j)
			}
		})
		return b, end, ok
	case kindVote:
		var b approval.VoteRecorded
		end, _, ok = object(v, i, voteNames, func(k, j int) (int, bool) {
			switch k {
			case 0:
				return text(&b.Voter, v, j)
			case 1:
				s, end, ok := plain(v, j)
				switch approval.VoteDecision(s) {
				case approval.Approve:
					b.Decision = approval.Approve
				case approval.Reject:
					b.Decision = approval.Reject
				default:
					return end, false // for the full decoder (Decide refuses it)
				}
				return end, ok
			default:
				return text(&b.Comment, v, j)
			}
		})
		return b, end, ok
	case kindApproved:
		var b approval.RequestApproved
		end, _, ok = object(v, i, approvedNames, func(_, j int) (int, bool) { return textList(&b.Approvers, v, j) })
		return b, end, ok
	case kindRejected:
		var b approval.RequestRejected
		end, _, ok = object(v, i, rejectedNames, func(k, j int) (int, bool) {
			if k == 0 {
				return textList(&b.Rejecters, v, j)
			}
			return text(&b.Comment, v, j)
		})
		return b, end, ok
	case kindExpired:
		var b approval.RequestExpired
		end, _, ok = object(v, i, expiredNames, func(_, j int) (int, bool) {
			s, end, ok := plain(v, j)
			// time.Time's UnmarshalJSON, as the domain's decoder calls it.
			return end, ok && len(s) > 0 && b.ExpiresAt.UnmarshalJSON(v[j:end]) == nil
		})
		return b, end, ok
	case kindCancelled:
		var b approval.RequestCancelled
		end, _, ok = object(v, i, cancelledNames, func(k, j int) (int, bool) {
			if k == 0 {
				return text(&b.By, v, j)
			}
			return text(&b.Reason, v, j)
		})
		return b, end, ok
	case kindCommandRejected:
		var b approval.CommandRejected
		end, _, ok = object(v, i, refusalNames, func(k, j int) (int, bool) {
			switch k {
			case 0:
				return text(&b.CommandID, v, j)
			case 1:
				return text(&b.CommandType, v, j)
			case 2:
				s, end, ok := plain(v, j)
				var known bool
				b.Code, known = reasonCode(s)
				return end, ok && known
			default:
				return text(&b.Detail, v, j)
			}
		})
		return b, end, ok
	case kindSeal:
		end, _, ok = object(v, i, sealNames, func(k, j int) (int, bool) {
			if k == 0 || k == 3 {
				return integer(v, j)
			}
			_, end, _, ok := str(v, j)
			return end, ok
		})
		return nil, end, ok
	}
	return nil, i, false
}

// integer reads a JSON number at v[i] that is an integer as written (no
// fraction, no exponent, no leading zero).
func integer(v []byte, i int) (int, bool) {
	k := i
	if k < len(v) && v[k] == '-' {
		k++
	}
	digits := k
	for k < len(v) && v[k] >= '0' && v[k] <= '9' {
		k++
	}
	switch {
	case k == digits, v[digits] == '0' && k > digits+1:
		return i, false
	case k < len(v) && (v[k] == '.' || v[k] == 'e' || v[k] == 'E'):
		return i, false
	}
	return k, true
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

// action decodes a request.submitted's action at v[i]. Its details
// (kept as raw JSON) are the full decoder's.
func (d *Decoder) action(a *approval.Action, v []byte, i int) (int, bool) {
	end, _, ok := object(v, i, actionNames, func(k, j int) (int, bool) {
		switch k {
		case 0:
			return text(&a.Type, v, j)
		case 1:
			return text(&a.Resource, v, j)
		case 2:
			return text(&a.Environment, v, j)
		default:
			return text(&a.Digest, v, j)
		}
	})
	return end, ok
}

// text decodes the JSON string at v[i] into *dst.
func text(dst *string, v []byte, i int) (int, bool) {
	var ok bool
	*dst, i, ok = textOf(v, i)
	return i, ok
}

// textOf decodes the JSON string at v[i].
func textOf(v []byte, i int) (string, int, bool) {
	s, end, esc, ok := str(v, i)
	if !ok {
		return "", i, false
	}
	if !esc {
		return view(s), end, true
	}
	u, ok := unescape(make([]byte, 0, len(s)), s)
	return string(u), end, ok
}

// textList decodes an array of strings at v[i] into *dst.
func textList(dst *[]string, v []byte, i int) (int, bool) {
	if i >= len(v) || v[i] != '[' {
		return i, false
	}
	i = skipWS(v, i+1)
	if i < len(v) && v[i] == ']' {
		*dst = []string{} // as encoding/json decodes [], not nil
		return i + 1, true
	}
	list := make([]string, 0, 2)
	for {
		s, end, ok := textOf(v, skipWS(v, i))
		if !ok {
			return i, false
		}
		list = append(list, s)
		i = skipWS(v, end)
		if i < len(v) && v[i] == ',' {
			i++
			continue
		}
		if i < len(v) && v[i] == ']' {
			*dst = list
			return i + 1, true
		}
		return i, false
	}
}

// policy decodes a request.submitted's policy snapshot at v[i].
func (d *Decoder) policy(dst *approval.PolicySnapshot, v []byte, i int) (int, bool) {
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
		*dst = e.snap
		if dst.ExpiresAt.UnmarshalJSON(v[j:end]) != nil {
			return i, false
		}
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
	ms, ok := Members(p, d.members[:0])
	d.members = ms[:0]
	if !ok {
		return i, false
	}
	em, ok := Find(ms, "expires_at")
	if !ok || p[em.Start] != '"' {
		return i, false
	}
	var expires time.Time
	if expires.UnmarshalJSON(p[em.Start:em.End]) != nil {
		return i, false
	}
	var full approval.PolicySnapshot
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&full); err != nil || !full.ExpiresAt.Equal(expires) {
		return i, false
	}
	*dst = full
	snap := full
	snap.ExpiresAt = time.Time{}
	if len(d.policies) >= maxSnapshots {
		d.policies = d.policies[:maxSnapshots-1]
	}
	d.policies = append([]policyEntry{{prefix: bytes.Clone(p[:em.Start]), suffix: bytes.Clone(p[em.End:]), snap: snap}}, d.policies...)
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
