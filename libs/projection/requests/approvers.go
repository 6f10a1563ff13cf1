package requests

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"

	"github.com/assent-dev/assent/libs/approval"
)

// A request's policy snapshot names every principal who may approve it: 50
// of them took 1.5 KB of a 2.4 KB state, written at every batch the state
// changed in, and compacted on its way down the store's levels with
// everything else. Requests under one policy share the list, so the store
// keeps each distinct list once, at a key of its SHA-256, and a state
// names its list by that hash:
//
//	a/<SHA-256 of the list, 32 bytes>   the list, as encoding/json writes it
//	r/<request id>                      0x01, the list's SHA-256 (32 bytes),
//	                                    then the state (JSON) with no approvers
//
// A list's key is written in the batch of the first state that names it
// (ApplyBatch looks for it once per batch), and never deleted: a store
// holds as many as the log has distinct policies.

func keyApprovers(ref [32]byte) []byte { return append([]byte("a/"), ref[:]...) }

// stateWithRef is the first byte of a stored state.
const stateWithRef = 0x01

// maxCachedLists bounds the lists a store keeps decoded in memory (and
// the hashes of those it encoded): past it, it forgets them all and reads
// them again as needed.
const maxCachedLists = 1024

// approverLists caches the approver lists a store read or wrote. Readers
// (API requests) and the runner use it at once.
type approverLists struct {
	mu      sync.RWMutex
	byRef   map[[32]byte][]string
	encoded map[string]encodedList // by the policy's hash (a hint: the list is compared)
}

// encodedList is a list as encodeState last wrote it for a policy hash.
type encodedList struct {
	list []string
	enc  []byte
	ref  [32]byte
}

// encode returns a list encoded and its SHA-256: those of the last list
// encoded for the same policy hash if it is the same list (requests under
// one policy come one after another), else computed.
func (l *approverLists) encode(policyHash string, list []string) ([]byte, [32]byte) {
	l.mu.RLock()
	e, ok := l.encoded[policyHash]
	l.mu.RUnlock()
	if ok && slices.Equal(e.list, list) && (e.list == nil) == (list == nil) {
		return e.enc, e.ref
	}
	enc := appendStrings(nil, list)
	e = encodedList{list: slices.Clone(list), enc: enc, ref: sha256.Sum256(enc)}
	l.mu.Lock()
	if l.encoded == nil || len(l.encoded) >= maxCachedLists {
		l.encoded = map[string]encodedList{}
	}
	l.encoded[policyHash] = e
	l.mu.Unlock()
	return e.enc, e.ref
}

// get returns a copy of the list whose SHA-256 is ref, from memory or r.
func (l *approverLists) get(r reader, ref [32]byte) ([]string, error) {
	l.mu.RLock()
	list, ok := l.byRef[ref]
	l.mu.RUnlock()
	if ok {
		return slices.Clone(list), nil
	}
	v, closer, err := r.Get(keyApprovers(ref))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("requests: approver list %x is missing", ref)
	}
	if err != nil {
		return nil, fmt.Errorf("requests: read approver list %x: %w", ref, err)
	}
	defer func() { _ = closer.Close() }() // releases a read value
	if sha256.Sum256(v) != ref {
		return nil, fmt.Errorf("requests: approver list %x does not hash to its key", ref)
	}
	if err := json.Unmarshal(v, &list); err != nil {
		return nil, fmt.Errorf("requests: decode approver list %x: %w", ref, err)
	}
	l.mu.Lock()
	if l.byRef == nil || len(l.byRef) >= maxCachedLists {
		l.byRef = map[[32]byte][]string{}
	}
	l.byRef[ref] = list
	l.mu.Unlock()
	return slices.Clone(list), nil
}

// encodeState is a state's stored value and its approver list: the list
// encoded, its SHA-256, and the state without it after stateWithRef and
// the hash, appended to buf. The bytes are those of encoding/json
// (TestAppendStateIsJSONMarshal).
func (l *approverLists) encodeState(buf []byte, st approval.State) (value, list []byte, ref [32]byte, err error) {
	list, ref = l.encode(st.Policy.Hash, st.Policy.Approvers)
	st.Policy.Approvers = nil
	value = append(append(buf, stateWithRef), ref[:]...)
	value, ok := appendState(value, &st)
	if !ok {
		raw, err := json.Marshal(st) // for its error
		if err != nil {
			return nil, nil, ref, err
		}
		value = append(append(append(buf[:0], stateWithRef), ref[:]...), raw...)
	}
	return value, list, ref, nil
}

// decodeState decodes a stored state and puts its approver list back.
func (l *approverLists) decodeState(r reader, v []byte) (approval.State, error) {
	var st approval.State
	if len(v) < 1+32 || v[0] != stateWithRef {
		return st, fmt.Errorf("not a stored state: %d bytes, not 0x%02x and an approver list's hash before its JSON", len(v), stateWithRef)
	}
	ref := [32]byte(v[1:33])
	if err := json.Unmarshal(v[33:], &st); err != nil {
		return st, err
	}
	list, err := l.get(r, ref)
	if err != nil {
		return st, err
	}
	st.Policy.Approvers = list
	return st, nil
}
