package session

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Failover (docs/architecture.md, "Failover"): a decider that is given a
// partition waits until no transaction is open on its events partition
// (stableEnds). A transaction left open by a decider that died stays open
// until the coordinator times it out: the transaction timeout (10s) plus
// the coordinator's scan for expired transactions (up to 10s more), which
// was most of a failover. Two things end it at once instead, each the way
// Kafka fences a zombie (KIP-98): a transactional producer that
// initializes its id bumps the id's epoch, and the coordinator aborts
// whatever that id left open.
//
//   - Every session initializes its producer id when it starts
//     (initProducer), not at its first transaction: a restarted decider (or
//     a session replacing one that failed mid-transaction) aborts what its
//     predecessor left open before it waits for that partition's end.
//     Before, it waited for its own predecessor's transaction to time out
//     before its first transaction, the one that would have aborted it.
//   - A decider given partitions, as soon as it is given them and again
//     while it waits for their end, finds who holds them open
//     (DescribeProducers, then ListTransactions), and if that is another
//     decider's transactional id whose decider is no longer a member of
//     the group, it initializes that id itself (fenceAbandoned). A member
//     of the group (one that just gave the partition up in a rebalance) is
//     left to end its own transaction, which it does at once.
//
// Neither weakens fencing: the old transaction is aborted, not committed,
// and the fenced producer's next request fails (PRODUCER_FENCED), which
// ends that decider's session (Run starts another). A paused decider that
// wakes after its partitions moved is fenced by its epoch as well as by
// the group generation of its offset commit (KIP-447).

// initProducer loads the session's producer id now, which aborts any
// transaction an earlier holder of the transactional id left open.
func (l *Loop) initProducer(ctx context.Context, sess *kgo.GroupTransactSession) error {
	ictx, cancel := context.WithTimeout(ctx, l.cfg.TxnTimeout+l.cfg.SessionTTL)
	defer cancel()
	id, epoch, err := sess.Client().ProducerID(ictx)
	if err != nil {
		err = fmt.Errorf("decider: initialize transactional id %q (which aborts what an earlier session left open): %w", l.cfg.TransactionalID, err)
		if refused(err) {
			return err // counted: an answer that a new session would get again
		}
		return kafkaAway{err}
	}
	l.cfg.Logger.Info("transactional producer initialized; anything an earlier session left open is aborted",
		"transactional_id", l.cfg.TransactionalID, "producer_id", id, "epoch", epoch)
	return nil
}

// refused reports whether err is Kafka's answer that the request cannot
// succeed (an authorization failure, a fenced or invalid id), rather than
// no answer at all (brokers unreachable, a timeout, a coordinator moving).
func refused(err error) bool {
	var ke *kerr.Error
	return errors.As(err, &ke) && !ke.Retriable
}

// fenceAbandoned aborts the open transactions on the given events
// partitions that another decider began and can no longer end: its
// transactional id is a decider's (Config.PeerClientID) and no member of
// the group has its client id. It returns the transactional ids it fenced.
// Whatever it cannot find out, it leaves alone: the caller keeps waiting,
// as before, for the transaction to end or time out.
func (l *Loop) fenceAbandoned(ctx context.Context, req kmsg.Requestor, parts []int32) []string {
	if l.cfg.PeerClientID == nil || len(parts) == 0 {
		return nil
	}
	began := time.Now()
	topic := l.cfg.EventsTopic
	described, err := l.adm.DescribeProducers(ctx, kadm.TopicsSet{topic: setOf(parts)})
	if err != nil {
		l.cfg.Logger.Debug("cannot see who holds the partitions open", "partitions", parts, "err", err)
		return nil
	}
	var open []int64
	described.EachPartition(func(p kadm.DescribedProducersPartition) {
		for _, pr := range p.ActiveProducers {
			if pr.CurrentTxnStartOffset >= 0 && !slices.Contains(open, pr.ProducerID) {
				open = append(open, pr.ProducerID)
			}
		}
	})
	if len(open) == 0 {
		return nil
	}
	txns, err := l.adm.ListTransactions(ctx, open, []string{"Ongoing"})
	if err != nil {
		l.cfg.Logger.Debug("cannot list the open transactions", "producers", open, "err", err)
		return nil
	}
	var candidates []string
	for _, t := range txns.Sorted() {
		if _, ok := l.cfg.PeerClientID(t.TxnID); ok && t.TxnID != l.cfg.TransactionalID {
			candidates = append(candidates, t.TxnID)
		}
	}
	if len(candidates) == 0 {
		return nil
	}
	groups, err := l.adm.DescribeGroups(ctx, l.cfg.Group)
	g, ok := groups[l.cfg.Group]
	if err != nil || !ok || g.Err != nil {
		l.cfg.Logger.Debug("cannot describe the group; not fencing", "err", errors.Join(err, g.Err))
		return nil
	}
	members := map[string]bool{}
	for _, m := range g.Members {
		members[m.ClientID] = true
	}
	var fenced []string
	for _, tid := range candidates {
		client, _ := l.cfg.PeerClientID(tid)
		if members[client] {
			continue // it gave the partition up and ends its own transaction
		}
		if err := l.fence(ctx, req, tid); err != nil {
			l.cfg.Logger.Warn("could not fence the open transaction of a decider that left the group; waiting for it to time out",
				"transactional_id", tid, "err", err)
			continue
		}
		fenced = append(fenced, tid)
	}
	if len(fenced) > 0 {
		l.cfg.Logger.Info("fenced the open transactions of deciders that left the group: aborted, not committed",
			"transactional_ids", fenced, "partitions", parts, "took", time.Since(began).String())
	}
	return fenced
}

// fence initializes transactional id tid (InitProducerId without a
// producer id): the coordinator bumps its epoch and aborts its open
// transaction, answering CONCURRENT_TRANSACTIONS until the abort is
// written.
func (l *Loop) fence(ctx context.Context, req kmsg.Requestor, tid string) error {
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		r := kmsg.NewPtrInitProducerIDRequest()
		r.TransactionalID = &tid
		r.TransactionTimeoutMillis = int32(min(l.cfg.TxnTimeout.Milliseconds(), math.MaxInt32)) //nolint:gosec // G115: clamped to an int32 first
		r.ProducerID, r.ProducerEpoch = -1, -1
		resp, err := r.RequestWith(fctx, req)
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, kerr.ConcurrentTransactions), errors.Is(err, kerr.CoordinatorLoadInProgress),
			errors.Is(err, kerr.CoordinatorNotAvailable), errors.Is(err, kerr.NotCoordinator):
		default:
			return err
		}
		select {
		case <-fctx.Done():
			return fmt.Errorf("%w (last: %w)", fctx.Err(), err)
		case <-time.After(fenceRetryBackoff):
		}
	}
}

// fenceRetryBackoff spaces the InitProducerId retries while the
// coordinator writes the abort (Kafka's own clients wait 100ms; the abort
// takes a few ms).
const fenceRetryBackoff = 20 * time.Millisecond

func setOf(parts []int32) map[int32]struct{} {
	m := make(map[int32]struct{}, len(parts))
	for _, p := range parts {
		m[p] = struct{}{}
	}
	return m
}
