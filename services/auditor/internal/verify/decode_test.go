package verify

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
)

// The cache of votes' and decisions' bodies returns what the domain's
// decoder returns for the same bytes, every time, and never keeps a
// failure: a body that does not decode fails on each event.
func TestBodiesCacheIsTheDecoder(t *testing.T) {
	var d bodies
	cases := []struct{ typ, data string }{
		{approval.TypeVoteRecorded, `{"voter":"user:alice@example.com","decision":"approve"}`},
		{approval.TypeVoteRecorded, `{"voter":"user:bob@example.com","decision":"reject","comment":"no"}`},
		{approval.TypeRequestApproved, `{"approvers":["user:alice@example.com","user:bob@example.com"]}`},
		{approval.TypeRequestRejected, `{"rejecters":["user:bob@example.com"],"comment":"no"}`},
	}
	for range 3 {
		for _, c := range cases {
			want, err := approval.DecodeEventBody(c.typ, []byte(c.data))
			require.NoError(t, err)
			got, err := d.decode(c.typ, []byte(c.data))
			require.NoError(t, err)
			require.Equal(t, want, got, "%s %s", c.typ, c.data)
		}
	}
	// The same bytes under another type are another value (or an error).
	_, err := d.decode(approval.TypeRequestRejected, []byte(cases[2].data))
	require.Error(t, err, "approvers are not a rejection")
	for _, bad := range []string{`{"voter":"user:alice@example.com","decision":"approve","extra":1}`, `{"voter":`} {
		for range 2 {
			_, err := d.decode(approval.TypeVoteRecorded, []byte(bad))
			require.Error(t, err, "%s", bad)
		}
	}
	// Bounded: the cache is emptied, not grown, past maxBodies.
	for i := range maxBodies + 10 {
		data := `{"voter":"user:u` + strconv.Itoa(i) + `@example.com","decision":"approve"}`
		_, err := d.decode(approval.TypeVoteRecorded, []byte(data))
		require.NoError(t, err)
		require.LessOrEqual(t, d.byCount, maxBodies)
	}
}
