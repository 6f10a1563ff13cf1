// Package outbound posts and updates the approval cards. It consumes the
// events topic as a consumer group, so each events partition has one
// gateway replica posting for it, and it renders every card from the
// gateway's own projection, so the card always shows the request as the
// log has it, whichever event woke it up.
//
// # Where the cards are
//
// Every posted card is recorded with a record-notification command: the
// channel and ts go into the log as notification.recorded, so every
// replica (and a restarted one) knows where each card is and updates it in
// place. Cards carry message metadata naming the request, so a card that
// was posted but not yet recorded can still be found.
//
// # Failover without duplicates
//
// When a replica is assigned a partition it notes the partition's end
// offset. Events before it may have been handled by the previous owner,
// which may have died between posting a card and recording it. For those
// events, before posting, it looks for the card in the channel's history
// by its metadata and records what it finds. Events after the end offset
// were produced after the assignment, so only this replica handles them,
// and a local memory of what it posted is enough. chat.postMessage is
// never retried after an unknown outcome without that same look (see
// slackapi.PostOnce).
//
// # Errors
//
// A Slack error that retrying cannot fix (channel_not_found, a deleted
// message, a user without an account) is logged and counted, and the
// event moves on. Anything else (a timeout, Slack down, Kafka down) is
// retried with backoff, holding the partition: cards are never skipped
// because Slack was briefly away.
package outbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/codec"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/projection"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/slack-gateway/internal/card"
	"github.com/assent-dev/assent/services/slack-gateway/internal/slackapi"
)

// Source is the CloudEvents source of the gateway's commands.
const Source = "assent/slack-gateway"

// Actor records notifications: only a service may.
const Actor = "service:slack-gateway"

// Slack is what the notifier calls.
type Slack interface {
	Channel(ctx context.Context, target string) (string, error)
	UserID(ctx context.Context, principal string) (string, error)
	DM(ctx context.Context, userID string) (string, error)
	PostOnce(ctx context.Context, channel, requestID, kind string, oldest time.Time, check bool, opts ...slack.MsgOption) (string, bool, error)
	Update(ctx context.Context, channel, ts string, opts ...slack.MsgOption) error
}

// Projection is the gateway's projection of the events topic.
type Projection interface {
	WaitOffset(ctx context.Context, p int32, off int64) error
	Get(rid string) (approval.State, bool, error)
}

// Sender makes a command durable.
type Sender interface {
	Send(ctx context.Context, env wire.Envelope) error
}

// Config is the notifier's settings and dependencies.
type Config struct {
	Kafka      eventlog.Config
	Topic      string // the events topic
	Group      string
	Slack      Slack
	Projection Projection
	Sender     Sender
	Logger     *slog.Logger
	Now        func() time.Time
	// Observe, if set, is told about each card posted or updated ("posted",
	// "updated", "found" for a card found in the history, "failed").
	Observe func(op string)
	// OnAssigned, if set, is called with the partitions assigned (tests).
	OnAssigned func(ps []int32)
}

// Notifier is the outbound side of the gateway.
type Notifier struct {
	cfg Config

	mu      sync.Mutex
	careful map[int32]int64 // partition → end offset at assignment
	posted  map[string]posted
}

type posted struct {
	ts string
	at time.Time
}

// New returns a Notifier.
func New(cfg Config) *Notifier {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Observe == nil {
		cfg.Observe = func(string) {}
	}
	return &Notifier{cfg: cfg, careful: map[int32]int64{}, posted: map[string]posted{}}
}

// Run consumes the events topic until ctx ends.
func (n *Notifier) Run(ctx context.Context) error {
	cl, err := eventlog.NewClient(n.cfg.Kafka, append(projection.FetchLimits(), // a new group reads the log from its start
		kgo.ConsumeTopics(n.cfg.Topic),
		kgo.ConsumerGroup(n.cfg.Group),
		// A dead replica's partitions move after 6s, as the decider's do.
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(n.assigned),
		kgo.OnPartitionsRevoked(n.revoked),
		kgo.OnPartitionsLost(n.lost),
	)...)
	if err != nil {
		return fmt.Errorf("outbound: %w", err)
	}
	defer func() {
		// Leave the group at once, so a survivor takes the partitions now
		// instead of after the session timeout.
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cl.CommitMarkedOffsets(closeCtx)
		cl.CloseAllowingRebalance()
	}()
	for {
		fetches := cl.PollRecords(ctx, 200)
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			n.cfg.Logger.Warn("fetch error", "topic", t, "partition", p, "err", err)
		})
		var (
			wg     sync.WaitGroup
			rewind sync.Map // partition → the record to handle again
		)
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Cards show the request's latest state, so of several events
				// about one request in a batch only the last needs handling:
				// one chat.update instead of many, under Slack's limits.
				types := make([]string, len(fp.Records)) // each record decoded once
				last := map[string]int{}
				for i, r := range fp.Records {
					types[i] = recordType(r)
					if cardType(types[i]) {
						last[string(r.Key)] = i
					}
				}
				for i, r := range fp.Records {
					if !cardType(types[i]) || last[string(r.Key)] != i {
						cl.MarkCommitRecords(r) // nothing a card shows, or not the request's last
						continue
					}
					if err := n.handleRetrying(ctx, r, types[i]); err != nil {
						rewind.Store(r.Partition, r) // it stays uncommitted, and is fetched again
						return
					}
					cl.MarkCommitRecords(r)
				}
			}()
		})
		wg.Wait()
		if ctx.Err() == nil {
			// Give up the held partitions' positions for now, so that a
			// rebalance waiting on this poll can go ahead; they are retried
			// from the record that failed.
			offsets := map[int32]kgo.EpochOffset{}
			rewind.Range(func(k, v any) bool {
				r := v.(*kgo.Record)
				offsets[k.(int32)] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset}
				return true
			})
			if len(offsets) > 0 {
				cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{n.cfg.Topic: offsets})
			}
		}
		if err := cl.CommitMarkedOffsets(ctx); err != nil && ctx.Err() == nil {
			n.cfg.Logger.Warn("could not commit offsets; the next owner redoes those events carefully", "err", err)
		}
		cl.AllowRebalance()
	}
}

func (n *Notifier) assigned(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	ps := m[n.cfg.Topic]
	ends := map[int32]int64{}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	listed, err := kadm.NewClient(cl).ListEndOffsets(lctx, n.cfg.Topic)
	for _, p := range ps {
		ends[p] = math.MaxInt64 // unknown: careful for ever is safe
		if err == nil {
			if o, ok := listed.Lookup(n.cfg.Topic, p); ok && o.Err == nil {
				ends[p] = o.Offset
			}
		}
	}
	n.mu.Lock()
	for p, e := range ends {
		n.careful[p] = e
	}
	n.mu.Unlock()
	n.cfg.Logger.Info("partitions assigned", "partitions", ps)
	if n.cfg.OnAssigned != nil {
		n.cfg.OnAssigned(ps)
	}
}

func (n *Notifier) revoked(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		n.cfg.Logger.Warn("commit on revoke", "err", err)
	}
	n.lost(ctx, cl, m)
}

func (n *Notifier) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range m[n.cfg.Topic] {
		delete(n.careful, p)
	}
}

// holdFor bounds how long one poll may retry a record (Slack or Kafka
// away): past it the partition is rewound and the poll ends, so that the
// consumer group can rebalance (its timeout is 60s) and the record is
// tried again by whoever owns the partition next.
const holdFor = 30 * time.Second

// handleRetrying handles a record of the given event type until it is
// done, ctx ends, or holdFor has passed.
func (n *Notifier) handleRetrying(ctx context.Context, r *kgo.Record, typ string) error {
	ctx, cancel := context.WithTimeout(ctx, holdFor)
	defer cancel()
	backoff := 200 * time.Millisecond
	for {
		err := n.handle(ctx, r, typ)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n.cfg.Logger.Warn("could not update Slack for an event; retrying", "partition", r.Partition, "offset", r.Offset, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// handle brings Slack up to date with the request a card event is about
// (its key is the request id).
func (n *Notifier) handle(ctx context.Context, r *kgo.Record, typ string) error {
	if err := n.cfg.Projection.WaitOffset(ctx, r.Partition, r.Offset+1); err != nil {
		return err
	}
	st, ok, err := n.cfg.Projection.Get(string(r.Key))
	if err != nil || !ok {
		return err
	}
	n.mu.Lock()
	careful := r.Offset < n.careful[r.Partition]
	n.mu.Unlock()
	return n.sync(ctx, st, careful, typ == approval.TypeRequestSubmitted)
}

// cardType reports whether an event type changes what a card shows.
func cardType(typ string) bool {
	switch typ {
	case approval.TypeRequestSubmitted, approval.TypeVoteRecorded, approval.TypeRequestApproved,
		approval.TypeRequestRejected, approval.TypeRequestExpired, approval.TypeRequestCancelled:
		return true
	default:
		return false // a checkpoint, a refusal, a recorded notification, or unreadable
	}
}

// recordType is the CloudEvents type of a request's event record, or "" for
// a record without a subject (a checkpoint) or one that does not decode.
func recordType(r *kgo.Record) string {
	env, err := eventlog.DecodeRecord(r)
	if err != nil || env.Subject == "" {
		return ""
	}
	return env.Type
}

// target is one place a request's card or message belongs.
type target struct {
	channel   string
	kind      approval.NotificationKind // card or dm
	recipient string                    // for a DM
	message   card.Message
	metaKind  string
	update    bool // an existing message is updated to the current state
}

// sync posts what is missing and updates what exists.
func (n *Notifier) sync(ctx context.Context, st approval.State, careful, submitted bool) error {
	targets, err := n.targets(ctx, st)
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range targets {
		if err := n.ensure(ctx, st, t, careful, submitted); err != nil {
			if permanent(err) {
				n.cfg.Logger.Error("Slack refused a card; moving on", "request", st.RequestID, "channel", t.channel, "err", err)
				n.cfg.Observe("failed")
				continue
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// targets lists the channels and DMs for the request's policy.
func (n *Notifier) targets(ctx context.Context, st approval.State) ([]target, error) {
	var out []target
	cardMsg := card.Card(st)
	for _, t := range st.Policy.Notify {
		switch t.Kind {
		case "slack_channel":
			ch, err := n.cfg.Slack.Channel(ctx, t.Target)
			if err != nil {
				if permanent(err) {
					n.cfg.Logger.Error("a policy names a Slack channel the gateway cannot use", "policy", st.Policy.Name, "channel", t.Target, "err", err)
					continue
				}
				return nil, err
			}
			out = append(out, target{channel: ch, kind: approval.NotifyCard, message: cardMsg, metaKind: card.KindCard, update: true})
		case "slack_dm_approvers":
			for _, p := range st.Policy.Approvers {
				if p == st.Requester {
					continue // they cannot approve it
				}
				ch, err := n.dmChannel(ctx, p)
				if err != nil {
					if permanent(err) {
						n.cfg.Logger.Warn("no Slack DM for an approver", "approver", p, "err", err)
						continue
					}
					return nil, err
				}
				out = append(out, target{channel: ch, kind: approval.NotifyDM, recipient: p, message: cardMsg, metaKind: card.KindCard, update: true})
			}
		default: // webhooks and email are another service's
		}
	}
	if st.Status.Terminal() && len(out) > 0 {
		ch, err := n.dmChannel(ctx, st.Requester)
		switch {
		case err == nil:
			out = append(out, target{channel: ch, kind: approval.NotifyDM, recipient: st.Requester, message: card.OutcomeDM(st), metaKind: card.KindOutcome})
		case permanent(err):
			n.cfg.Logger.Info("the requester has no Slack DM; no outcome message", "requester", st.Requester)
		default:
			return nil, err
		}
	}
	return out, nil
}

func (n *Notifier) dmChannel(ctx context.Context, principal string) (string, error) {
	uid, err := n.cfg.Slack.UserID(ctx, principal)
	if err != nil {
		return "", err
	}
	return n.cfg.Slack.DM(ctx, uid)
}

// ensure makes one target current: update the recorded message, or post
// it (looking first when careful) and record it.
func (n *Notifier) ensure(ctx context.Context, st approval.State, t target, careful, submitted bool) error {
	key := st.RequestID + "|" + t.channel + "|" + t.metaKind
	ts := n.recorded(st, t)
	if ts == "" {
		ts = n.remembered(key)
	}
	if ts != "" {
		if !t.update || (submitted && st.Sequence == 1) {
			return nil // posted in this very state
		}
		if err := n.cfg.Slack.Update(ctx, t.channel, ts, t.message.Options()...); err != nil {
			return err
		}
		n.cfg.Observe("updated")
		return n.record(ctx, st, t, ts) // a no-op once it is recorded
	}
	ts, found, err := n.cfg.Slack.PostOnce(ctx, t.channel, st.RequestID, t.metaKind, st.CreatedAt, careful, t.message.Options()...)
	if err != nil {
		return err
	}
	n.remember(key, ts)
	if found {
		n.cfg.Observe("found")
		if t.update {
			if err := n.cfg.Slack.Update(ctx, t.channel, ts, t.message.Options()...); err != nil {
				return err
			}
			n.cfg.Observe("updated")
		}
	} else {
		n.cfg.Observe("posted")
	}
	return n.record(ctx, st, t, ts)
}

// recorded returns the ts of the target's message from the log's notes.
func (n *Notifier) recorded(st approval.State, t target) string {
	for _, note := range st.Notes {
		// Only card and dm notes match: t.kind is one of them, so the
		// notifier's webhook and email notes are never taken for a card.
		if note.Kind == t.kind && note.Channel == t.channel && note.Recipient == t.recipient {
			return note.TS
		}
	}
	return ""
}

// record writes the record-notification command unless the note is in
// the projection already.
func (n *Notifier) record(ctx context.Context, st approval.State, t target, ts string) error {
	for _, note := range st.Notes {
		if !note.Kind.Delivery() && note.Channel == t.channel && note.TS == ts {
			return nil // the notifier's webhook and email notes are not cards
		}
	}
	body := approval.RecordNotification{Kind: t.kind, Channel: t.channel, TS: ts, Recipient: t.recipient}
	cmd := approval.Command{
		ID:        command.NotificationID(Source, st.RequestID, t.channel, ts),
		RequestID: st.RequestID, Actor: Actor, Time: n.cfg.Now().UTC(), Body: body,
	}
	env, err := codec.CommandEnvelope(cmd, Source)
	if err != nil {
		return err
	}
	if err := n.cfg.Sender.Send(ctx, env); err != nil {
		return fmt.Errorf("outbound: record the card of %s in %s: %w", st.RequestID, t.channel, err)
	}
	return nil
}

// The local memory of posted messages covers the time between posting and
// seeing the note in the projection.
const rememberFor = 30 * time.Minute

func (n *Notifier) remembered(key string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.posted[key].ts
}

func (n *Notifier) remember(key, ts string) {
	now := n.cfg.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.posted) > 10000 {
		for k, p := range n.posted {
			if now.Sub(p.at) > rememberFor {
				delete(n.posted, k)
			}
		}
	}
	n.posted[key] = posted{ts: ts, at: now}
}

// permanent reports whether Slack answered with an error that retrying
// will not fix.
func permanent(err error) bool {
	if errors.Is(err, slackapi.ErrChannelNotFound) || errors.Is(err, slackapi.ErrNotAUser) {
		return true
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		switch se.Err {
		case "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout":
			return false
		}
		return true
	}
	return false
}
