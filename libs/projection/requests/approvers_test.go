package requests_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/projection/requests"
)

// TestApproverListsAreStoredOnce: requests under one policy share its
// approver list, which the store writes once, not with every state; each
// state reads back with the whole list (checkFold compares every state with
// a replay of its events), a caller that changes what it read changes
// nothing stored, a store opened afresh reads the lists from disk, and a
// list that does not hash to its key is refused, not served.
func TestApproverListsAreStoredOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for i := range 40 {
		rid := fmt.Sprintf("req-%d", i)
		h.submit(rid, dave, t0.Add(time.Duration(i)*time.Second), time.Hour)
		if i%2 == 0 {
			require.Nil(t, h.vote(rid, alice, approval.Approve, t0.Add(time.Minute)))
		}
	}
	h.checkFold()

	lists, states := keysWith(t, h.db, "a/"), keysWith(t, h.db, "r/")
	require.Len(t, lists, 1, "one policy, one list")
	require.Len(t, states, 40)
	want := `["` + alice + `","` + bob + `","` + carol + `","` + dave + `"]`
	require.Equal(t, want, string(lists[0][1]))
	for _, kv := range states {
		require.NotContains(t, string(kv[1]), bob, "a state holds no approver list of its own")
	}

	st := h.get("req-3")
	require.Equal(t, []string{alice, bob, carol, dave}, st.Policy.Approvers)
	st.Policy.Approvers[0] = "user:mallory@example.com"
	require.Equal(t, []string{alice, bob, carol, dave}, h.get("req-3").Policy.Approvers)

	// A store that has read nothing yet.
	fresh := &requests.Store{}
	fresh.Attach(h.db)
	st, found, err := fresh.Get("req-4")
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, []string{alice, bob, carol, dave}, st.Policy.Approvers)

	// The list on disk, changed: a store that must read it refuses it.
	require.NoError(t, h.db.Set(lists[0][0], []byte(`["user:mallory@example.com"]`), pebble.Sync))
	tampered := &requests.Store{}
	tampered.Attach(h.db)
	_, _, err = tampered.Get("req-4")
	require.ErrorContains(t, err, "does not hash to its key")
}

// keysWith returns the keys and values of db that start with prefix.
func keysWith(t *testing.T, db *pebble.DB, prefix string) [][2][]byte {
	t.Helper()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte(prefix)})
	require.NoError(t, err)
	defer func() { require.NoError(t, it.Close()) }()
	var out [][2][]byte
	for it.First(); it.Valid() && bytes.HasPrefix(it.Key(), []byte(prefix)); it.Next() {
		out = append(out, [2][]byte{bytes.Clone(it.Key()), bytes.Clone(it.Value())})
	}
	return out
}
