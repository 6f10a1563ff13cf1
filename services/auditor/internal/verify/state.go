package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/auditor/internal/replay"
)

// StateFormat names the layout of a saved verification state. v2 added
// the events of pending requests, which the domain replay goes on from;
// a v1 state is refused (verify once from the start).
const StateFormat = "assent-audit-state-v2"

// State is what a verification run saves, so that the next run verifies
// only what is new: per partition, where the verified chain ends, and per
// request, its last sequence and terminal outcome.
type State struct {
	Format     string                `json:"format"`
	Topic      string                `json:"topic"`
	VerifiedAt time.Time             `json:"verified_at"`
	Partitions map[string]*PartState `json:"partitions"` // by partition number
}

// PartState is one partition's verified chain.
type PartState struct {
	Next       int64                `json:"next"`              // the last stable offset read to
	Head       string               `json:"head"`              // the hash of the last record authenticated (a seal)
	HeadOffset int64                `json:"head_offset"`       // its offset; -1 for none
	HeadID     string               `json:"head_id,omitempty"` // its event id
	SealOffset int64                `json:"seal_offset"`       // the last verified seal; -1 for none
	Records    int64                `json:"records"`           // records verified, all runs
	Seals      int64                `json:"seals"`             // seals verified, all runs
	Requests   map[string]*ReqState `json:"requests"`
}

// ReqState is one request's chain: its last sequence and, once decided,
// its outcome; while it is pending, its events (the record values, byte
// for byte), which the domain replay folds to go on from.
type ReqState struct {
	Seq      uint64            `json:"s"`
	Terminal string            `json:"t,omitempty"`
	Pending  []json.RawMessage `json:"e,omitempty"`

	replay replay.Request // not saved: rebuilt from Pending
	id     string         // not saved: the request id, its key in PartState.Requests
}

// freshPart is the state of a partition never verified.
func freshPart() *PartState {
	return &PartState{Head: wire.GenesisHash, HeadOffset: -1, SealOffset: -1}
}

// LoadState reads a saved state, or returns (nil, nil) if path does not
// exist.
func LoadState(path string) (*State, error) {
	raw, err := os.ReadFile(path) //nolint:gosec // the auditor names the state file
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("verify: state: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var s State
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("verify: state %s is not a saved verification state: %w", path, err)
	}
	if s.Format == "assent-audit-state-v1" {
		return nil, fmt.Errorf("verify: state %s was saved before verify replayed the domain, and lacks the pending requests' events: verify once from the start (move the file away) to save a new one", path)
	}
	if s.Format != StateFormat {
		return nil, fmt.Errorf("verify: state %s: format %q, want %q", path, s.Format, StateFormat)
	}
	for k, ps := range s.Partitions {
		if _, err := strconv.ParseInt(k, 10, 32); err != nil || ps == nil {
			return nil, fmt.Errorf("verify: state %s: bad partition %q", path, k)
		}
		for rid, rs := range ps.Requests {
			if rs == nil {
				return nil, fmt.Errorf("verify: state %s: partition %s: request %q has no state", path, k, rid)
			}
			if err := rs.resume(); err != nil {
				return nil, fmt.Errorf("verify: state %s: partition %s: request %q: %w", path, k, rid, err)
			}
		}
	}
	return &s, nil
}

// Save writes the state atomically (a temporary file renamed over path).
func (s *State) Save(path string) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("verify: encode state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".audit-state-*")
	if err != nil {
		return fmt.Errorf("verify: save state: %w", err)
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	if _, err := tmp.Write(raw); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("verify: save state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("verify: save state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("verify: save state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("verify: save state: %w", err)
	}
	return nil
}

// resume rebuilds the request's replay from its saved events: the log
// verified them in an earlier run.
func (rs *ReqState) resume() error {
	// The state file is input like any other: a sequence no request can
	// reach is refused, not wrapped.
	if rs.Seq > math.MaxInt32 {
		return fmt.Errorf("its saved sequence %d is out of range", rs.Seq)
	}
	seq := int(rs.Seq)
	if len(rs.Pending) == 0 {
		rs.replay = replay.Tombstone(approval.Status(rs.Terminal), seq)
		return nil
	}
	events := make([]approval.Event, len(rs.Pending))
	values := make([][]byte, len(rs.Pending))
	for i, raw := range rs.Pending {
		env, err := wire.Unmarshal(raw)
		if err == nil {
			events[i], err = codec.DomainEvent(env)
		}
		if err != nil {
			return fmt.Errorf("saved event %d: %w", i, err)
		}
		values[i] = raw
	}
	rs.replay = replay.Resume(events, values)
	if got := rs.replay.Sequence(); got != seq {
		return fmt.Errorf("its saved events end at sequence %d, its state at %d", got, rs.Seq)
	}
	return nil
}
