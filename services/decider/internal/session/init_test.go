package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TestInitFailuresThatCount: a session whose producer id cannot be
// initialized because Kafka does not answer waits for it (a Kafka outage
// must not make the decider exit after five sessions, as waiting in a
// poll never did); one that Kafka refuses (an ACL, a fenced id) fails, and
// five such in a row make the decider exit with the reason.
func TestInitFailuresThatCount(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return fmt.Errorf("decider: initialize transactional id: %w", err) }
	require.True(t, refused(wrap(kerr.TransactionalIDAuthorizationFailed)))
	require.True(t, refused(wrap(kerr.ProducerFenced)))
	require.False(t, refused(wrap(kerr.CoordinatorNotAvailable)), "retriable: the coordinator is moving")
	require.False(t, refused(wrap(kerr.NotCoordinator)))
	require.False(t, refused(wrap(context.DeadlineExceeded)), "no answer in time")
	require.False(t, refused(wrap(&net.OpError{Op: "dial", Err: errors.New("connection refused")})))
}
