package requests

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/assent-dev/assent/libs/approval"
)

// appendState appends the JSON encoding/json writes for s, byte for byte
// (TestAppendStateIsJSONMarshal, FuzzAppendState): a rebuild writes every
// request's state at least once, and json.Marshal's reflection was a
// tenth of its CPU time. The fields that are rare or small (an action's
// details, a policy's notify targets and ttl, the notes), any string that
// needs escaping and any time not in UTC are encoded by encoding/json
// itself; ok is false when encoding/json fails on one of them, and the
// caller then lets it say why.
func appendState(b []byte, s *approval.State) (_ []byte, ok bool) {
	b = append(b, `{"RequestID":`...)
	b = appendString(b, s.RequestID)
	b = append(b, `,"Status":`...)
	b = appendString(b, string(s.Status))
	b = append(b, `,"Action":{"type":`...)
	b = appendString(b, s.Action.Type)
	b = append(b, `,"resource":`...)
	b = appendString(b, s.Action.Resource)
	b = append(b, `,"environment":`...)
	b = appendString(b, s.Action.Environment)
	if len(s.Action.Details) > 0 {
		b = append(b, `,"details":`...)
		if b, ok = appendMarshal(b, s.Action.Details); !ok {
			return b, false
		}
	}
	if s.Action.Digest != "" {
		b = append(b, `,"digest":`...)
		b = appendString(b, s.Action.Digest)
	}
	b = append(b, `},"Reason":`...)
	b = appendString(b, s.Reason)
	b = append(b, `,"Requester":`...)
	b = appendString(b, s.Requester)
	b = append(b, `,"ContentHash":`...)
	b = appendString(b, s.ContentHash)
	p := &s.Policy
	b = append(b, `,"Policy":{"name":`...)
	b = appendString(b, p.Name)
	b = append(b, `,"hash":`...)
	b = appendString(b, p.Hash)
	b = append(b, `,"approvers":`...)
	b = appendStrings(b, p.Approvers)
	b = append(b, `,"min_approvals":`...)
	b = strconv.AppendInt(b, int64(p.MinApprovals), 10)
	b = append(b, `,"reject_threshold":`...)
	b = strconv.AppendInt(b, int64(p.RejectThreshold), 10)
	b = append(b, `,"ttl":`...)
	if b, ok = appendMarshal(b, p.TTL); !ok {
		return b, false
	}
	b = append(b, `,"expires_at":`...)
	if b, ok = appendTime(b, p.ExpiresAt); !ok {
		return b, false
	}
	if len(p.Notify) > 0 {
		b = append(b, `,"notify":`...)
		if b, ok = appendMarshal(b, p.Notify); !ok {
			return b, false
		}
	}
	b = append(b, `},"CreatedAt":`...)
	if b, ok = appendTime(b, s.CreatedAt); !ok {
		return b, false
	}
	b = append(b, `,"DecidedAt":`...)
	if b, ok = appendTime(b, s.DecidedAt); !ok {
		return b, false
	}
	b = append(b, `,"DecidedBy":`...)
	b = appendStrings(b, s.DecidedBy)
	b = append(b, `,"Votes":`...)
	if s.Votes == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range s.Votes {
			v := &s.Votes[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"voter":`...)
			b = appendString(b, v.Voter)
			b = append(b, `,"decision":`...)
			b = appendString(b, string(v.Decision))
			if v.Comment != "" {
				b = append(b, `,"comment":`...)
				b = appendString(b, v.Comment)
			}
			b = append(b, `,"at":`...)
			if b, ok = appendTime(b, v.At); !ok {
				return b, false
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"Notes":`...)
	if b, ok = appendMarshal(b, s.Notes); !ok {
		return b, false
	}
	b = append(b, `,"Sequence":`...)
	b = strconv.AppendInt(b, int64(s.Sequence), 10)
	b = append(b, `,"Outcomes":`...)
	if s.Outcomes == nil {
		b = append(b, "null"...)
	} else {
		ids := make([]string, 0, len(s.Outcomes))
		for id := range s.Outcomes {
			ids = append(ids, id)
		}
		slices.Sort(ids) // encoding/json writes a map's keys sorted
		b = append(b, '{')
		for i, id := range ids {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, id)
			b = append(b, ':', '{')
			o := s.Outcomes[id]
			if o.Code != "" {
				b = append(b, `"code":`...)
				b = appendString(b, string(o.Code))
			}
			if o.Detail != "" {
				if o.Code != "" {
					b = append(b, ',')
				}
				b = append(b, `"detail":`...)
				b = appendString(b, o.Detail)
			}
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	b = append(b, `,"Refused":`...)
	b = appendStrings(b, s.Refused)
	b = append(b, `,"Refusals":`...)
	b = strconv.AppendInt(b, int64(s.Refusals), 10)
	return append(b, '}'), true
}

// appendString appends s as encoding/json writes it: as it is when every
// byte is printable ASCII that encoding/json does not escape (no quote,
// backslash or HTML character), by encoding/json otherwise.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			raw, _ := json.Marshal(s) // a string always encodes
			return append(b, raw...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendStrings(b []byte, list []string) []byte {
	if list == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendTime appends t as time.Time's MarshalJSON writes it: itself for
// a time not in UTC or outside the years it writes.
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	if _, offset := t.Zone(); offset != 0 || t.Year() < 0 || t.Year() > 9999 {
		return appendMarshal(b, t)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}

func appendMarshal(b []byte, v any) ([]byte, bool) {
	raw, err := json.Marshal(v)
	if err != nil {
		return b, false
	}
	return append(b, raw...), true
}
