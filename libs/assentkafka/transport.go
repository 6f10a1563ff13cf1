package assentkafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/eventlog"
	assent "github.com/assent-dev/assent/libs/sdk"
	"github.com/assent-dev/assent/libs/wire"
)

// Source is the CloudEvents source of the commands this package writes.
const Source = command.SourceKafkaSDK

// DefaultRescanAfter is how long a wait that reads from the offset listed
// before its command was produced tolerates seeing nothing of that
// command, once it has read to the end of the partition, before it reads
// the partition again from the start. See Client.WaitFor.
const DefaultRescanAfter = 2 * time.Second

// idlePoll bounds one poll, so that a wait notices the end of the
// partition and its context in time.
const idlePoll = 250 * time.Millisecond

// Client produces commands to the commands topic and reads their outcome
// from the events topic. It is safe for concurrent use; Close it.
type Client struct {
	cfg         eventlog.Config
	topics      eventlog.TopicSpec
	principal   string
	producer    *kgo.Client
	adm         *kadm.Client
	rescanAfter time.Duration
	now         func() time.Time
	checked     atomic.Bool // the topics have the partitions the spec says
	keys        *wire.KeyRing
	signer      *wire.Signer
}

// Option configures a Client.
type Option func(*Client)

// WithRescanAfter sets how long a wait may see nothing of its command at
// the end of the partition before it rereads the partition from the start
// (default DefaultRescanAfter).
func WithRescanAfter(d time.Duration) Option { return func(c *Client) { c.rescanAfter = d } }

// WithKeys gives the published decider public keys (infra/keys): the
// transport folds only events a seal signed with one of them covers.
// Required.
func WithKeys(keys *wire.KeyRing) Option { return func(c *Client) { c.keys = keys } }

// WithCommandKey gives the backend's command key, published in the
// service keys file (infra/keys/service-keys.json) as speaking for
// principal: every command is signed with it, and the decider refuses, as
// unauthenticated, a command that is unsigned or that names a principal
// the key may not speak for. Required.
func WithCommandKey(key *wire.Signer) Option { return func(c *Client) { c.signer = key } }

// New returns a transport that acts as principal, such as
// "service:billing", on the topics of spec (eventlog.DefaultTopicSpec() in
// production). It does not connect; the first call does, and checks that
// both topics have spec.Partitions partitions, since the partition of a
// request is computed from that number.
//
// The actor of every command is principal, and the command is signed
// with the key of WithCommandKey: the decider decides it only if the
// published service keys say that key speaks for principal. A backend's
// key has no on_behalf role, so it cannot vote, cancel or submit as (or
// name as the requester) anyone else, whatever its Kafka ACLs.
func New(cfg eventlog.Config, spec eventlog.TopicSpec, principal string, opts ...Option) (*Client, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("assentkafka: %w", err)
	}
	p, err := approval.NormalizePrincipal(principal)
	if err != nil {
		return nil, fmt.Errorf("assentkafka: %w", err)
	}
	if kind, _, _ := approval.ParsePrincipal(p); kind == approval.KindSystem {
		return nil, fmt.Errorf("assentkafka: %s is a system principal; only user and service principals send commands", p)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "assent-sdk"
	}
	producer, err := eventlog.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("assentkafka: %w", err)
	}
	c := &Client{
		cfg: cfg, topics: spec, principal: p, producer: producer, adm: kadm.NewClient(producer),
		rescanAfter: DefaultRescanAfter, now: time.Now,
	}
	for _, o := range opts {
		o(c)
	}
	if c.keys.Len() == 0 {
		producer.Close()
		return nil, errors.New("assentkafka: the published decider public keys are required (WithKeys): only events they sign are trusted")
	}
	if c.signer == nil {
		producer.Close()
		return nil, errors.New("assentkafka: the backend's command key is required (WithCommandKey): the decider refuses unsigned commands; " +
			"make one with `auditor keygen --key-id ID --out FILE --principal " + p + "` and publish the entry it prints in infra/keys/service-keys.json")
	}
	return c, nil
}

// Close closes the Kafka connections.
func (c *Client) Close() { c.producer.Close() }

// Principal is the principal the client acts as.
func (c *Client) Principal() string { return c.principal }

// Sent is a command that Kafka acknowledged: it is durable and will be
// decided.
type Sent struct {
	RequestID string
	CommandID string
	// Partition is the request's partition, in both topics.
	Partition int32
	// From is the last stable offset of the events partition listed just
	// before the command was produced: its outcome is at or after it,
	// unless the same command was decided before.
	From int64

	hash string // a submit's content hash
}

// Submit produces a dev.assent.command.submit for req, keyed by its
// request id, with acks=all on an idempotent producer, and returns once
// Kafka has acknowledged it. An empty req.RequestID gets a UUIDv7.
//
// The command id is derived from the principal, the request id and the
// content, so a retried Submit is the same command, which the decider
// decides once (I2); the same request id with other content is another
// command, which the decider refuses with conflict. req.Requester may name
// someone else as the requester only if the command key has the on_behalf
// role; otherwise the decider refuses the submit as unauthenticated.
//
// Because the id names the intention, a refusal sticks to it: a submit
// refused with no_policy is refused again, with the original detail, when
// the same principal resubmits the same content under the same request id,
// even after the policy file changed. Use a new request id after fixing
// the cause. (Through the HTTP API, which makes a new command id for each
// submit, the resubmit would be decided afresh.)
//
// A body that the domain would refuse as invalid is refused here, as a
// *assent.Problem, and never reaches the log.
func (c *Client) Submit(ctx context.Context, req assent.SubmitRequest) (Sent, error) {
	rid := req.RequestID
	if rid == "" {
		rid = assent.NewRequestID()
	}
	body, hash, err := c.submitBody(req)
	if err != nil {
		return Sent{RequestID: rid}, err
	}
	cmd := approval.Command{
		ID:        command.SDKCommandID("submit", c.principal, rid, hash),
		RequestID: rid, Actor: c.principal, Time: c.now().UTC(), Body: body,
	}
	s, err := c.send(ctx, cmd)
	s.hash = hash
	return s, err
}

// Vote produces a dev.assent.command.vote as the client's principal, the
// voter. v.Voter must be empty or that principal. The command id is
// derived from the voter, the request, the vote and v.IdempotencyKey, so
// a retried Vote is the same command. Outcome tells whether it counted.
func (c *Client) Vote(ctx context.Context, requestID string, v assent.VoteRequest) (Sent, error) {
	if v.Voter != "" {
		if p, err := approval.NormalizePrincipal(v.Voter); err != nil || p != c.principal {
			return Sent{RequestID: requestID}, assent.NewRefusal(assent.CodeForbidden,
				fmt.Sprintf("the Kafka transport votes as %s, not %s; use a transport for that principal", c.principal, v.Voter))
		}
	}
	cmd := approval.Command{
		ID:        command.SDKCommandID("vote", c.principal, requestID, string(v.Decision), v.Comment, v.IdempotencyKey),
		RequestID: requestID, Actor: c.principal, Time: c.now().UTC(),
		Body: approval.Vote{Decision: approval.VoteDecision(v.Decision), Comment: v.Comment},
	}
	return c.send(ctx, cmd)
}

// Cancel produces a dev.assent.command.cancel as the client's principal,
// which must be the requester or an admin of the policy file. Outcome
// tells whether it took effect.
func (c *Client) Cancel(ctx context.Context, requestID string, r assent.CancelRequest) (Sent, error) {
	cmd := approval.Command{
		ID:        command.SDKCommandID("cancel", c.principal, requestID, r.Reason, r.IdempotencyKey),
		RequestID: requestID, Actor: c.principal, Time: c.now().UTC(),
		Body: approval.Cancel{Reason: r.Reason},
	}
	return c.send(ctx, cmd)
}

// RequestApproval submits req and waits for the decision: Submit, then
// WaitFor. It returns what assent.Client.RequestApproval returns:
//
//   - approved: Decision.Approved is true and the error is nil;
//   - rejected, expired or cancelled: Approved is false, the error nil;
//   - refused: the error is a *assent.Problem with the reason code of the
//     command.rejected event (assent.IsCode(err, assent.CodeNoPolicy));
//   - ctx ended first: the error wraps assent.ErrPending and ctx.Err().
//
// Only Approved == true means go ahead.
func (c *Client) RequestApproval(ctx context.Context, req assent.SubmitRequest) (assent.Decision, error) {
	s, err := c.Submit(ctx, req)
	if err != nil {
		d := assent.Decision{RequestID: s.RequestID}
		if ctx.Err() != nil {
			d.Status = assent.StatusPending
			return d, pending(s.RequestID, err)
		}
		return d, err
	}
	return c.WaitFor(ctx, s)
}

// WaitFor waits for the decision on a request that s, from Submit,
// submitted. It reads the request's events partition with read_committed
// from s.From and folds the request's events with approval.Evolve. It
// returns once the request is terminal with the content s submitted, or
// once the submit's command.rejected appears (as a *assent.Problem).
//
// Reading from s.From avoids scanning the partition's history. When that
// cannot see the whole request, it reads the partition again from the
// start: when the first event of the request it meets is not its first
// (sequence 1), or when it has read to the end of the partition and for
// WithRescanAfter seen nothing of the submit, which is what happens when
// the same submit was already decided before s.From (a retry of an
// earlier Submit, perhaps from another process).
func (c *Client) WaitFor(ctx context.Context, s Sent) (assent.Decision, error) {
	if s.hash == "" {
		return assent.Decision{RequestID: s.RequestID}, errors.New("assentkafka: WaitFor needs the Sent of a Submit")
	}
	st, err := c.follow(ctx, watch{
		rid: s.RequestID, partition: s.Partition, from: s.From,
		traced: func(st approval.State) bool { return st.Status != approval.StatusNone || hasOutcome(st, s.CommandID) },
		settled: func(st approval.State, _ bool) (bool, error) {
			if r := st.Outcomes[s.CommandID].Refusal(); r != nil {
				return true, refusalProblem(r)
			}
			return st.Status.Terminal() && st.ContentHash == s.hash, nil
		},
	})
	return decision(s.RequestID, st, err)
}

// Wait waits for the decision on a request known only by its id. It reads
// the request's events partition from the start, so it costs a scan of the
// partition's history; WaitFor does not. Since it does not know what was
// submitted, it cannot check the content: it returns the first terminal
// status of whatever request has the id. If the request does not exist
// and the last submit of it by this client's principal was refused, it
// returns that refusal once it has read to the end of the partition.
func (c *Client) Wait(ctx context.Context, requestID string) (assent.Decision, error) {
	if err := c.checkTopics(ctx); err != nil {
		return decision(requestID, approval.State{}, err)
	}
	var refused *approval.CommandRejected // the principal's last refused submit
	st, err := c.follow(ctx, watch{
		rid: requestID, partition: c.partition(requestID), from: -1,
		observe: func(e approval.Event) {
			if r, ok := e.Body.(approval.CommandRejected); ok && r.CommandType == approval.TypeSubmit && e.Actor == c.principal {
				refused = &r
			}
		},
		settled: func(st approval.State, atEnd bool) (bool, error) {
			if st.Status.Terminal() {
				return true, nil
			}
			if atEnd && st.Status == approval.StatusNone && refused != nil {
				return true, refusalProblem(&approval.Refusal{Code: refused.Code, Detail: refused.Detail})
			}
			return false, nil
		},
	})
	return decision(requestID, st, err)
}

// Outcome waits until the command s is decided and returns nil if it was
// accepted, or its refusal as a *assent.Problem (a vote that is
// CodeNotEligible, CodeDuplicateVote...). An accepted vote may or may not
// have decided the request; Wait or WaitFor tell.
//
// A submit that repeats, with identical content, one made through
// another path (the HTTP API, another principal) adds no event, so its
// outcome never appears; wait for a submit with WaitFor, which knows.
func (c *Client) Outcome(ctx context.Context, s Sent) error {
	_, err := c.follow(ctx, watch{
		rid: s.RequestID, partition: s.Partition, from: s.From,
		traced: func(st approval.State) bool { return hasOutcome(st, s.CommandID) },
		settled: func(st approval.State, _ bool) (bool, error) {
			if !hasOutcome(st, s.CommandID) {
				return false, nil
			}
			if r := st.Outcomes[s.CommandID].Refusal(); r != nil {
				return true, refusalProblem(r)
			}
			return true, nil
		},
	})
	return err
}

// send produces one command and returns once Kafka acknowledged it.
func (c *Client) send(ctx context.Context, cmd approval.Command) (Sent, error) {
	s := Sent{RequestID: cmd.RequestID, CommandID: cmd.ID}
	if err := command.Preflight(cmd); err != nil {
		var r *approval.Refusal
		if errors.As(err, &r) {
			return s, refusalProblem(r)
		}
		return s, err
	}
	if err := c.checkTopics(ctx); err != nil {
		return s, err
	}
	s.Partition = c.partition(cmd.RequestID)
	from, err := c.committedEnd(ctx, s.Partition)
	if err != nil {
		return s, err
	}
	s.From = from
	w := command.Writer{Source: Source, Sender: command.Kafka{Client: c.producer, Topic: c.topics.Commands, Signer: c.signer}}
	if err := w.Send(ctx, cmd); err != nil {
		return s, fmt.Errorf("assentkafka: produce %s for %s: %w", cmd.Body.CommandType(), cmd.RequestID, err)
	}
	return s, nil
}

func (c *Client) submitBody(req assent.SubmitRequest) (approval.Submit, string, error) {
	var details json.RawMessage
	if len(req.Action.Details) > 0 {
		raw, err := json.Marshal(req.Action.Details)
		if err != nil {
			return approval.Submit{}, "", assent.NewRefusal(assent.CodeInvalid, "action.details: "+err.Error())
		}
		// Canonical details: the event then carries exactly what the
		// content hash covers, as the api does.
		if details, err = approval.NormalizeDetails(raw); err != nil {
			return approval.Submit{}, "", assent.NewRefusal(assent.CodeInvalid, "action.details: "+refusalDetail(err))
		}
	}
	requester := c.principal
	if req.Requester != "" {
		p, err := approval.NormalizePrincipal(req.Requester)
		if err != nil {
			return approval.Submit{}, "", assent.NewRefusal(assent.CodeInvalid, "requester: "+err.Error())
		}
		requester = p
	}
	body := approval.Submit{
		Action: approval.Action{
			Type: req.Action.Type, Resource: req.Action.Resource, Environment: req.Action.Environment,
			Details: details, Digest: req.Action.Digest,
		},
		Reason: req.Reason,
		TTL:    approval.Duration(req.TTL),
	}
	if requester != c.principal {
		body.Requester = requester
	}
	// The decider hashes the submit with the requester filled in.
	full := body
	full.Requester = requester
	return body, approval.ContentHash(full), nil
}

// checkTopics verifies once that both topics have the partitions of the
// spec: a request's partition is computed from that number, and a wrong
// one would wait on the wrong partition forever.
func (c *Client) checkTopics(ctx context.Context) error {
	if c.checked.Load() {
		return nil
	}
	details, err := c.adm.ListTopics(ctx, c.topics.Commands, c.topics.Events)
	if err != nil {
		return fmt.Errorf("assentkafka: describe topics: %w", err)
	}
	for _, name := range []string{c.topics.Commands, c.topics.Events} {
		d, ok := details[name]
		switch {
		case !ok:
			return fmt.Errorf("assentkafka: topic %s is missing", name)
		case d.Err != nil:
			return fmt.Errorf("assentkafka: topic %s: %w", name, d.Err)
		case len(d.Partitions) != int(c.topics.Partitions):
			return fmt.Errorf("assentkafka: topic %s has %d partitions, the configuration says %d",
				name, len(d.Partitions), c.topics.Partitions)
		}
	}
	c.checked.Store(true)
	return nil
}

func (c *Client) partition(rid string) int32 {
	return wire.Partition([]byte(rid), int(c.topics.Partitions))
}

// committedEnd is the last stable offset of an events partition.
func (c *Client) committedEnd(ctx context.Context, p int32) (int64, error) {
	return c.listOffset(ctx, p, c.adm.ListCommittedOffsets)
}

func (c *Client) listOffset(ctx context.Context, p int32,
	list func(context.Context, ...string) (kadm.ListedOffsets, error),
) (int64, error) {
	offs, err := list(ctx, c.topics.Events)
	if err != nil {
		return 0, fmt.Errorf("assentkafka: list offsets of %s: %w", c.topics.Events, err)
	}
	o, ok := offs.Lookup(c.topics.Events, p)
	if !ok {
		return 0, fmt.Errorf("assentkafka: no offset listed for %s/%d", c.topics.Events, p)
	}
	if o.Err != nil {
		return 0, fmt.Errorf("assentkafka: list offsets of %s/%d: %w", c.topics.Events, p, o.Err)
	}
	return o.Offset, nil
}

func hasOutcome(st approval.State, commandID string) bool {
	_, ok := st.Outcomes[commandID]
	return ok
}

func refusalProblem(r *approval.Refusal) *assent.Problem {
	return assent.NewRefusal(assent.Code(r.Code), r.Detail)
}

func refusalDetail(err error) string {
	var r *approval.Refusal
	if errors.As(err, &r) {
		return r.Detail
	}
	return err.Error()
}

func pending(rid string, cause error) error {
	return fmt.Errorf("%w: request %s: %w", assent.ErrPending, rid, cause)
}

// decision turns a fold into the SDK's Decision, with the same Status
// rules as assent.Client.RequestApproval: pending when the wait ended
// first, empty on a refusal.
func decision(rid string, st approval.State, err error) (assent.Decision, error) {
	d := assent.Decision{RequestID: rid}
	if st.Status != approval.StatusNone {
		d = assent.DecisionOf(viewOf(rid, st))
	}
	switch {
	case err == nil:
	case errors.Is(err, assent.ErrPending):
		d.Approved, d.Status = false, assent.StatusPending
	default:
		// A refused submit has no request of its own: the fold, if any,
		// is another submit's (a conflict).
		d = assent.Decision{RequestID: rid}
	}
	return d, err
}

// viewOf is the request view of a fold, as the API would show it.
func viewOf(rid string, st approval.State) *assent.RequestView {
	v := &assent.RequestView{
		ID: rid, Status: assent.Status(st.Status), Requester: st.Requester, Reason: st.Reason,
		Action: assent.Action{
			Type: st.Action.Type, Resource: st.Action.Resource, Environment: st.Action.Environment,
			Digest: st.Action.Digest,
		},
		CreatedAt: st.CreatedAt, ExpiresAt: st.Policy.ExpiresAt, DecidedAt: st.DecidedAt,
		DecidedBy: st.DecidedBy,
		Policy: assent.PolicySnapshot{
			Name: st.Policy.Name, Hash: st.Policy.Hash, Approvers: st.Policy.Approvers,
			MinApprovals: st.Policy.MinApprovals, RejectThreshold: st.Policy.RejectThreshold,
			TTL: time.Duration(st.Policy.TTL), ExpiresAt: st.Policy.ExpiresAt,
		},
		Votes:    []assent.Vote{},
		Sequence: int64(st.Sequence),
	}
	if len(st.Action.Details) > 0 {
		_ = json.Unmarshal(st.Action.Details, &v.Action.Details) // the decider stored it canonical
	}
	for _, x := range st.Votes {
		v.Votes = append(v.Votes, assent.Vote{Voter: x.Voter, Decision: assent.VoteDecision(x.Decision), Comment: x.Comment, At: x.At})
	}
	v.Approvals, v.Rejections = st.Tally()
	for _, n := range st.DeadLetters() {
		v.DeadLetters = append(v.DeadLetters, assent.DeadLetter{
			Kind: string(n.Kind), Target: n.Channel, Recipient: n.Recipient, EventID: n.TS,
			Reason: n.Reason, Attempts: n.Attempts, At: n.At,
		})
	}
	return v
}
