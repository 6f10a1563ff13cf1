package logadmin

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/assent-dev/assent/libs/eventlog"
)

// Action is what Provision did with a topic.
type Action string

// Provision's actions.
const (
	Created  Action = "created"  // the topic did not exist and was created
	Verified Action = "verified" // the topic existed and matches the spec
)

// TopicReport is Provision's outcome for one topic.
type TopicReport struct {
	Topic             string
	Action            Action
	Partitions        int32
	ReplicationFactor int16
	Configs           map[string]string // the checked configs
}

// Report is Provision's outcome: the commands topic, then the events topic.
type Report struct {
	Topics []TopicReport
}

// String renders one line per topic, e.g.
// "assent.events.v1: created (12 partitions, replication factor 3, ...)".
func (r Report) String() string {
	var b strings.Builder
	for i, t := range r.Topics {
		if i > 0 {
			b.WriteByte('\n')
		}
		keys := make([]string, 0, len(t.Configs))
		for k := range t.Configs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		fmt.Fprintf(&b, "%s: %s (%d partitions, replication factor %d", t.Topic, t.Action, t.Partitions, t.ReplicationFactor)
		for _, k := range keys {
			fmt.Fprintf(&b, ", %s=%s", k, t.Configs[k])
		}
		b.WriteByte(')')
	}
	return b.String()
}

// Mismatch is one way an existing topic differs from the spec.
type Mismatch struct {
	Topic   string // the topic, or "commands, events" for a difference between them
	Setting string // "partitions", "replication factor", "exists" or a config key
	Got     string
	Want    string
}

func (m Mismatch) String() string {
	if m.Setting == "exists" {
		return m.Topic + ": does not exist"
	}
	return fmt.Sprintf("%s: %s = %s, want %s", m.Topic, m.Setting, m.Got, m.Want)
}

// Fix says how an operator resolves the mismatch. Nothing in this package
// alters an existing topic: each fix is a deliberate human act.
func (m Mismatch) Fix() string {
	switch m.Setting {
	case "exists":
		return "run `assent-kafka provision` (or start a service that provisions)"
	case "partitions":
		if strings.Contains(m.Topic, ",") {
			return "the decider maps command partition p to events partition p, so the counts must be equal: recreate the smaller topic, or move to new topic versions"
		}
		return fmt.Sprintf("the key-to-partition mapping depends on the count, so %s cannot be changed in place: delete and re-provision it if it holds nothing you need, or move to a new topic version", m.Topic)
	case "replication factor":
		return fmt.Sprintf("reassign %s's replicas with kafka-reassign-partitions.sh", m.Topic)
	default:
		return fmt.Sprintf("kafka-configs.sh --bootstrap-server BROKER --alter --entity-type topics --entity-name %s --add-config %s=%s", m.Topic, m.Setting, m.Want)
	}
}

// MismatchError is returned by Provision and CheckTopics when the cluster's
// topics differ from the spec.
type MismatchError struct {
	Mismatches []Mismatch
}

// Error lists the differences per topic, then how to fix each, e.g.
// "eventlog: topics differ from the spec: assent.events.v1: partitions = 6,
// want 12; cleanup.policy = compact, want delete. Existing topics are never
// altered; to fix: ...".
func (e *MismatchError) Error() string {
	var b strings.Builder
	b.WriteString("eventlog: topics differ from the spec: ")
	last := ""
	for i, m := range e.Mismatches {
		s := m.String()
		if m.Topic == last {
			s = strings.TrimPrefix(s, m.Topic+": ")
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s)
		last = m.Topic
	}
	b.WriteString(". Existing topics are never altered; to fix: ")
	for i, m := range e.Mismatches {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(m.Topic + " " + m.Setting + ": " + m.Fix())
	}
	return b.String()
}

// topicState is what the cluster says about one topic.
type topicState struct {
	exists     bool
	partitions int32
	minRF      int16 // the smallest and largest replica count over partitions
	maxRF      int16
	configs    map[string]string
}

// How long topics may take to become visible on every broker. KRaft
// propagates metadata to brokers asynchronously, so for a moment after a
// topic is created some brokers still answer that it does not exist.
const (
	createdGrace = 15 * time.Second // after Provision's own create
	checkGrace   = 2 * time.Second  // before CheckTopics reports a topic missing
)

// CheckTopics verifies, without changing anything, that both topics exist
// and match spec: partition count, replication factor and the configs in
// eventlog.TopicSpec.Configs. It also refuses topics whose partition counts differ
// from each other. Every service calls it before it starts; a non-nil
// error is a *MismatchError or a failure to ask the cluster. A topic that
// looks missing is looked for again for up to two seconds, in case it was
// created a moment ago and not every broker knows it yet.
func CheckTopics(ctx context.Context, adm *kadm.Client, spec eventlog.TopicSpec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	names := []string{spec.Commands, spec.Events}
	states, err := describeVisible(ctx, adm, checkGrace, names...)
	if err != nil {
		return err
	}
	if ms := compareAll(spec, states); len(ms) > 0 {
		return &MismatchError{Mismatches: ms}
	}
	return nil
}

// Provision creates the topics of spec that do not exist and verifies the
// ones that do. If any existing topic differs from spec it returns a
// *MismatchError and creates nothing. Running it again, or from several
// processes at once, is safe: a topic someone else just created is verified.
// When it returns without error, both topics exist as specified and every
// broker it asked knows them.
func Provision(ctx context.Context, adm *kadm.Client, spec eventlog.TopicSpec) (Report, error) {
	if err := spec.Validate(); err != nil {
		return Report{}, err
	}
	names := []string{spec.Commands, spec.Events}
	states, err := describeTopics(ctx, adm, names...)
	if err != nil {
		return Report{}, err
	}
	if ms := compare(spec, states); len(ms) > 0 {
		return Report{}, &MismatchError{Mismatches: ms}
	}

	// A topic the answering broker does not know may still exist: brokers
	// learn of a new topic asynchronously. Ask the controller, with a
	// validate-only create, before creating anything, so that an existing
	// topic that differs from spec is refused before its sibling is created.
	configs := spec.Configs()
	var unseen []string
	for _, name := range names {
		if !states[name].exists {
			unseen = append(unseen, name)
		}
	}
	existing, err := existAtController(ctx, adm, spec, configs, unseen)
	if err != nil {
		return Report{}, err
	}
	if len(existing) > 0 {
		states, err = describeUntilVisible(ctx, adm, createdGrace, names, existing)
		if err != nil {
			return Report{}, err
		}
		if ms := compare(spec, states); len(ms) > 0 {
			return Report{}, &MismatchError{Mismatches: ms}
		}
	}

	report := Report{}
	missing := false
	for _, name := range names {
		tr := TopicReport{Topic: name, Action: Verified, Partitions: spec.Partitions, ReplicationFactor: spec.ReplicationFactor, Configs: configs[name]}
		if !states[name].exists {
			// Missing, or only not yet known to the broker that answered:
			// creating it settles which. A topic that already exists is
			// verified below like any other.
			missing = true
			created, err := createTopic(ctx, adm, spec, name, configs[name])
			if err != nil {
				return Report{}, err
			}
			if created {
				tr.Action = Created
			}
		}
		report.Topics = append(report.Topics, tr)
	}
	if !missing {
		return report, nil
	}
	// Verify what was created, by us or concurrently by someone with
	// another spec, once the brokers know it.
	states, err = describeVisible(ctx, adm, createdGrace, names...)
	if err != nil {
		return Report{}, err
	}
	if ms := compareAll(spec, states); len(ms) > 0 {
		return Report{}, &MismatchError{Mismatches: ms}
	}
	return report, nil
}

// compareAll is compare plus a mismatch for each topic that does not exist.
func compareAll(spec eventlog.TopicSpec, states map[string]topicState) []Mismatch {
	var ms []Mismatch
	for _, name := range []string{spec.Commands, spec.Events} {
		if !states[name].exists {
			ms = append(ms, Mismatch{Topic: name, Setting: "exists", Got: "no", Want: "yes"})
		}
	}
	return append(ms, compare(spec, states)...)
}

// existAtController returns which of names the controller says exist,
// asking with a validate-only create, which changes nothing. Any other
// refusal (a replication factor the cluster cannot meet, say) is left for
// the real create to report, with the broker's message.
func existAtController(ctx context.Context, adm *kadm.Client, spec eventlog.TopicSpec, configs map[string]map[string]string, names []string) ([]string, error) {
	var existing []string
	for _, name := range names {
		resps, err := adm.ValidateCreateTopics(ctx, spec.Partitions, spec.ReplicationFactor, configPtrs(configs[name]), name)
		if err == nil {
			var resp kadm.CreateTopicResponse
			resp, err = resps.On(name, nil)
			if err == nil {
				err = resp.Err
			}
		}
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists):
			existing = append(existing, name)
		case ctx.Err() != nil:
			return nil, fmt.Errorf("eventlog: check whether topic %s exists: %w", name, ctx.Err())
		}
	}
	return existing, nil
}

// describeVisible describes names, and repeats while some topic looks
// missing, for up to grace.
func describeVisible(ctx context.Context, adm *kadm.Client, grace time.Duration, names ...string) (map[string]topicState, error) {
	return describeUntilVisible(ctx, adm, grace, names, names)
}

// describeUntilVisible describes names, and repeats while a topic of
// mustExist looks missing, for up to grace.
func describeUntilVisible(ctx context.Context, adm *kadm.Client, grace time.Duration, names, mustExist []string) (map[string]topicState, error) {
	deadline := time.Now().Add(grace)
	for {
		states, err := describeTopics(ctx, adm, names...)
		if err != nil {
			return nil, err
		}
		allExist := true
		for _, name := range mustExist {
			allExist = allExist && states[name].exists
		}
		if allExist || time.Now().After(deadline) {
			return states, nil
		}
		if err := pause(ctx, 100*time.Millisecond); err != nil {
			return nil, fmt.Errorf("eventlog: describe topics: %w", err)
		}
	}
}

// pause waits for d or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// createTopic creates one topic. It returns false, nil if the topic was
// created by someone else in the meantime.
func createTopic(ctx context.Context, adm *kadm.Client, spec eventlog.TopicSpec, name string, configs map[string]string) (bool, error) {
	resp, err := adm.CreateTopic(ctx, spec.Partitions, spec.ReplicationFactor, configPtrs(configs), name)
	switch {
	case errors.Is(err, kerr.TopicAlreadyExists):
		return false, nil
	case err != nil:
		msg := ""
		if resp.ErrMessage != "" {
			msg = " (" + resp.ErrMessage + ")"
		}
		return false, fmt.Errorf("eventlog: create topic %s: %w%s", name, err, msg)
	}
	return true, nil
}

// configPtrs is configs the way kadm's create requests take them.
func configPtrs(configs map[string]string) map[string]*string {
	ptrs := make(map[string]*string, len(configs))
	for k, v := range configs {
		ptrs[k] = kadm.StringPtr(v)
	}
	return ptrs
}

// compare returns how the existing topics in states differ from spec.
func compare(spec eventlog.TopicSpec, states map[string]topicState) []Mismatch {
	var ms []Mismatch
	configs := spec.Configs()
	for _, name := range []string{spec.Commands, spec.Events} {
		st := states[name]
		if !st.exists {
			continue
		}
		if st.partitions != spec.Partitions {
			ms = append(ms, Mismatch{name, "partitions", itoa(st.partitions), itoa(spec.Partitions)})
		}
		if st.minRF != spec.ReplicationFactor || st.maxRF != spec.ReplicationFactor {
			got := itoa(st.minRF)
			if st.minRF != st.maxRF {
				got += ".." + itoa(st.maxRF)
			}
			ms = append(ms, Mismatch{name, "replication factor", got, itoa(spec.ReplicationFactor)})
		}
		keys := make([]string, 0, len(configs[name]))
		for k := range configs[name] {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			want := configs[name][k]
			got, ok := st.configs[k]
			if !ok {
				ms = append(ms, Mismatch{name, k, "(unknown)", want})
			} else if !sameConfig(k, got, want) {
				ms = append(ms, Mismatch{name, k, got, want})
			}
		}
	}
	c, e := states[spec.Commands], states[spec.Events]
	if c.exists && e.exists && c.partitions != e.partitions {
		ms = append(ms, Mismatch{spec.Commands + ", " + spec.Events, "partitions", itoa(c.partitions) + " and " + itoa(e.partitions), "equal"})
	}
	return ms
}

// sameConfig compares config values the way Kafka means them: numbers as
// numbers, lists as sets.
func sameConfig(key, got, want string) bool {
	switch key {
	case eventlog.ConfigCleanupPolicy:
		norm := func(s string) string {
			parts := strings.Split(s, ",")
			for i := range parts {
				parts[i] = strings.TrimSpace(parts[i])
			}
			slices.Sort(parts)
			return strings.Join(slices.Compact(parts), ",")
		}
		return norm(got) == norm(want)
	default:
		g, err1 := strconv.ParseInt(strings.TrimSpace(got), 10, 64)
		w, err2 := strconv.ParseInt(want, 10, 64)
		if err1 == nil && err2 == nil {
			return g == w
		}
		return got == want
	}
}

// describeTopics reads partitions, replicas and configs of the named
// topics; a topic that does not exist has exists == false.
//
// Metadata and configs may come from different brokers, and a broker may
// not know a topic created a moment ago: when the configs of a topic that
// the metadata listed are unknown, it asks again, a few times.
func describeTopics(ctx context.Context, adm *kadm.Client, names ...string) (map[string]topicState, error) {
	for attempt := 1; ; attempt++ {
		states, err := describeTopicsOnce(ctx, adm, names...)
		if !errors.Is(err, kerr.UnknownTopicOrPartition) || attempt == 20 {
			return states, err
		}
		if err := pause(ctx, 100*time.Millisecond); err != nil {
			return nil, fmt.Errorf("eventlog: describe topics: %w", err)
		}
	}
}

func describeTopicsOnce(ctx context.Context, adm *kadm.Client, names ...string) (map[string]topicState, error) {
	md, err := freshMetadata(ctx, adm, names...)
	if err != nil {
		return nil, fmt.Errorf("eventlog: describe topics: %w", err)
	}
	states := make(map[string]topicState, len(names))
	var existing []string
	for _, name := range names {
		td, ok := md.Topics[name]
		if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
			states[name] = topicState{}
			continue
		}
		if td.Err != nil {
			return nil, fmt.Errorf("eventlog: describe topic %s: %w", name, td.Err)
		}
		n := len(td.Partitions)
		if n > math.MaxInt32 {
			return nil, fmt.Errorf("eventlog: describe topic %s: %d partitions", name, n)
		}
		st := topicState{exists: true, partitions: int32(n)}
		for i, p := range td.Partitions.Sorted() {
			r := len(p.Replicas)
			if r > math.MaxInt16 {
				return nil, fmt.Errorf("eventlog: describe topic %s: %d replicas of partition %d", name, r, p.Partition)
			}
			rf := int16(r)
			if i == 0 || rf < st.minRF {
				st.minRF = rf
			}
			if rf > st.maxRF {
				st.maxRF = rf
			}
		}
		states[name] = st
		existing = append(existing, name)
	}
	if len(existing) == 0 {
		return states, nil
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, existing...)
	if err != nil {
		return nil, fmt.Errorf("eventlog: describe topic configs: %w", err)
	}
	for _, name := range existing {
		rc, err := rcs.On(name, nil)
		if err == nil {
			err = rc.Err
		}
		if err != nil {
			return nil, fmt.Errorf("eventlog: describe configs of %s: %w", name, err)
		}
		st := states[name]
		st.configs = make(map[string]string, len(rc.Configs))
		for _, c := range rc.Configs {
			st.configs[c.Key] = c.MaybeValue()
		}
		states[name] = st
	}
	return states, nil
}

// freshMetadata issues a metadata request that bypasses kadm's metadata
// cache (up to MetadataMinAge old, 5s by default): provisioning and
// readiness must see topics created and ISRs changed a moment ago. kadm
// skips its cache when authorized operations are requested, and this is
// the only public way to ask for that.
func freshMetadata(ctx context.Context, adm *kadm.Client, topics ...string) (kadm.Metadata, error) {
	return adm.Metadata(kadm.WithAuthorizedOps(ctx), topics...)
}

func itoa[T int16 | int32 | int](n T) string { return strconv.Itoa(int(n)) }
