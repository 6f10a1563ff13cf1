package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/test/systest"
)

// Config is one run of the suite.
type Config struct {
	Root string // the repository
	Dir  string // where binaries, the cluster, logs and the report go
	// Duration is how long the workload runs. The fault schedule cycles
	// through Faults, with Quiet between faults, until it is over; a zero
	// Duration runs each fault once.
	Duration time.Duration
	Faults   []string
	Quiet    time.Duration
	Clients  int
	Think    time.Duration
	// DeciderTags builds a deliberately broken decider (see libs/approval).
	DeciderTags string
	// Brokers, if set, is an existing cluster to use instead of the
	// suite's own (broker faults are then refused).
	Brokers []string
	// Prefix names the topics, groups, instances and request ids.
	Prefix string
	Logf   func(format string, args ...any)

	// noGateways leaves the Slack gateways (and the fake Slack) out: the
	// failover benchmark needs only the deciders and the api replicas.
	noGateways bool
	// deciderEnv is added to the deciders' environment, apiEnv to the
	// api replicas'.
	deciderEnv, apiEnv []string
}

// Run is everything a run produced.
type Run struct {
	Config   Config        `json:"-"`
	Started  time.Time     `json:"started"`
	Ended    time.Time     `json:"ended"`
	Warmup   [2]time.Time  `json:"warmup"`
	Faults   []Fault       `json:"faults"`
	Ops      []Op          `json:"-"`
	Verdict  Verdict       `json:"-"`
	Gaps     []Gap         `json:"gaps"`
	Baseline Gap           `json:"baseline"`
	Events   int           `json:"events"`
	Settle   time.Duration `json:"settle"`
	Notes    []string      `json:"notes,omitempty"`
	// Exits are the service processes that ended on their own (each was
	// restarted a second later, as a supervisor would).
	Exits []Exit `json:"exits"`
	// Forgeries are the records the insider wrote, Counters the api
	// replicas' violation counters around each insider fault.
	Forgeries []Forgery `json:"forgeries"`
	Counters  []Counter `json:"counters"`
}

// Execute builds, starts and drives the system, injects the faults, then
// reads the log back and checks it. An error means the run could not be
// carried out; anomalies are in the result.
func Execute(ctx context.Context, cfg Config) (*Run, error) {
	if cfg.Clients <= 0 {
		cfg.Clients = 6
	}
	if cfg.Think <= 0 {
		cfg.Think = 40 * time.Millisecond
	}
	if cfg.Quiet <= 0 {
		cfg.Quiet = 5 * time.Second
	}
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("chaos%d", time.Now().UnixNano()%1_000_000_000)
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if len(cfg.Brokers) > 0 && (slices.Contains(cfg.Faults, FaultKillBroker) || slices.Contains(cfg.Faults, FaultPartitionBroker) ||
		slices.Contains(cfg.Faults, FaultKillController)) {
		return nil, errors.New("chaos: broker faults need the suite's own cluster; leave Brokers empty")
	}
	r := &Run{Config: cfg, Started: time.Now()}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	bin := filepath.Join(cfg.Dir, "bin")
	logf("building api, decider (tags %q) and slack-gateway into %s", cfg.DeciderTags, bin)
	if err := Build(ctx, cfg.Root, bin, cfg.DeciderTags); err != nil {
		return nil, err
	}

	brokers := cfg.Brokers
	var cluster *Cluster
	if len(brokers) == 0 {
		logf("starting a Kafka cluster (three brokers, three controllers) in network namespaces")
		var err error
		cluster, err = StartCluster(ctx, cfg.Root, filepath.Join(cfg.Dir, "kafka"), logf)
		if err != nil {
			return nil, err
		}
		defer cluster.Close()
		brokers = cluster.Brokers()
	}
	kcfg := eventlog.Config{Brokers: brokers}
	var err error
	if cluster != nil {
		kcfg.SCRAM = cluster.Admin()
	} else if kcfg.SCRAM, err = eventlog.SCRAMFromEnv(os.Getenv); err != nil {
		return nil, err
	}
	keys, err := wire.LoadKeyRing(systest.DemoKeysFile())
	if err != nil {
		return nil, fmt.Errorf("chaos: the published decider keys: %w", err)
	}
	spec := eventlog.TopicSpec{Commands: cfg.Prefix + ".commands", Events: cfg.Prefix + ".events", Partitions: 12, ReplicationFactor: 3, MinInsyncReplicas: 2}
	if err := provision(ctx, kcfg, spec, cluster != nil); err != nil {
		return nil, err
	}
	// On its own cluster, each service runs as its own Kafka user with only
	// its role's ACLs, as scripts/up runs them: the faults are survived
	// with least privilege. On a cluster it is given, the services run as
	// the environment's user.
	users := map[logadmin.Role][]string{}
	if cluster != nil {
		if users, err = serviceUsers(ctx, kcfg, spec, filepath.Join(cfg.Dir, "credentials")); err != nil {
			return nil, err
		}
	}
	if cluster == nil {
		defer deleteTopics(kcfg, spec, logf)
	}
	logf("topics %s and %s ready on %s", spec.Commands, spec.Events, strings.Join(brokers, ","))

	secret := "chaos-signing-secret"
	procs, err := startServices(ctx, cfg, bin, brokers, spec, secret, users)
	if err != nil {
		return nil, err
	}
	defer procs.stopAll()
	logf("2 deciders, 2 api replicas and 2 gateways ready")

	rec := &Recorder{}
	stop := make(chan struct{})
	w := &Workload{Prefix: cfg.Prefix, APIs: urls(procs.apis), Gateways: urls(procs.gateways), SigningSecret: secret,
		Clients: cfg.Clients, Think: cfg.Think, Rec: rec, Stop: stop}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = w.Run(ctx) }()
	progressDone := make(chan struct{})
	go progress(ctx, rec, logf, progressDone)

	n := &Nemesis{Deciders: procs.deciders, APIs: procs.apis, Gateways: procs.gateways, Cluster: cluster,
		Hold: 2 * time.Second, Pause: 10 * time.Second, BrokerHold: 8 * time.Second, PartitionHold: 12 * time.Second, Logf: logf,
		Expiry: &ExpiryPause{W: w, Prefix: cfg.Prefix, Partitions: int(spec.Partitions), Deciders: procs.deciders,
			TTL: 4 * time.Second, Before: 500 * time.Millisecond, Pause: 10 * time.Second, Requests: 6},
		Hostile: &Hostile{W: w, Prefix: cfg.Prefix, Workers: 256, Votes: 40000, Duration: 15 * time.Second, Rate: 1000}}
	var insider *Insider
	if slices.Contains(cfg.Faults, FaultInsider) {
		// The leaked password is the admin's: kcfg is the super user.
		insider = &Insider{Kafka: kcfg, Topic: spec.Events, Partitions: spec.Partitions, Prefix: cfg.Prefix, Keys: keys,
			APIs: procs.apis, Rec: rec, Logf: logf}
		if err := insider.Start(ctx); err != nil {
			return nil, err
		}
		defer insider.Close()
		n.Insider = insider
	}
	r.Warmup[0] = time.Now()
	sleep(ctx, cfg.Quiet)
	r.Warmup[1] = time.Now()
	deadline := time.Now().Add(cfg.Duration)
	for i := 0; ctx.Err() == nil; i++ {
		if cfg.Duration == 0 && i == len(cfg.Faults) || cfg.Duration > 0 && time.Now().After(deadline) || len(cfg.Faults) == 0 {
			break
		}
		f := n.Inject(ctx, cfg.Faults[i%len(cfg.Faults)])
		sleep(ctx, cfg.Quiet)
		f.End = time.Now()
		r.Faults = append(r.Faults, f)
	}
	if len(cfg.Faults) == 0 {
		sleep(ctx, cfg.Duration)
	}
	close(stop)
	wg.Wait()
	close(progressDone)
	if insider != nil {
		insider.Close()
		r.Forgeries, r.Counters = insider.Forgeries(), insider.Counters()
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("chaos: interrupted: %w", err)
	}
	r.Ops = rec.Ops()
	logf("workload done: %d operations; waiting for every acknowledged command to be decided", len(r.Ops))

	began := time.Now()
	if _, err := settle(ctx, kcfg, spec.Events, keys, r.Ops); err != nil {
		return nil, err
	}
	r.Settle = time.Since(began)
	// The gateways keep recording the cards they post after the workload
	// ends: stop them, and wait until the log stops growing, so that the
	// log read next and the views read after it describe the same state.
	for _, p := range procs.all() {
		r.Exits = append(r.Exits, p.Exits()...)
	}
	for _, g := range procs.gateways {
		g.Close()
	}
	if err := quiesce(ctx, kcfg, spec.Events); err != nil {
		return nil, err
	}
	log, err := systest.ReadLog(ctx, kcfg, spec.Events)
	if err != nil {
		return nil, fmt.Errorf("chaos: read the events topic: %w", err)
	}
	commands, err := systest.ReadLog(ctx, kcfg, spec.Commands)
	if err != nil {
		return nil, fmt.Errorf("chaos: read the commands topic: %w", err)
	}
	// Only what a valid seal covers is the deciders': the replicas must
	// converge on its fold, forgeries or not.
	authLog, _ := Authenticated(log, spec.Events, keys)
	fold := systest.Check(authLog, nil).States
	views := map[string]map[string]View{}
	for _, p := range procs.apis {
		v, err := converge(ctx, p, fold)
		if err != nil {
			return nil, err
		}
		views[p.Name] = v
	}
	logf("read %d event records and %d command records; checking", len(log), len(commands))
	r.Verdict = Check(Input{Log: log, Commands: commands, Ops: r.Ops, Views: views, Keys: keys, Topic: spec.Events,
		Forgeries: r.Forgeries, Counters: r.Counters})
	r.Events = r.Verdict.Base.Events
	r.Gaps, r.Baseline = gaps(authLog, r.Faults, r.Warmup)
	for _, op := range r.Ops {
		if strings.HasPrefix(op.Detail, "command id mismatch") {
			r.Notes = append(r.Notes, fmt.Sprintf("op %d: %s (the suite's derivation of API command ids is out of date)", op.ID, op.Detail))
			break
		}
	}
	r.Ended = time.Now()
	return r, nil
}

func urls(ps []*Proc) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.URL())
	}
	return out
}

func progress(ctx context.Context, rec *Recorder, logf func(string, ...any), done <-chan struct{}) {
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-t.C:
			byOutcome := map[Outcome]int{}
			for _, op := range rec.Ops() {
				byOutcome[op.Outcome]++
			}
			logf("progress: %d operations %v", rec.Count(), byOutcome)
		}
	}
}

func provision(ctx context.Context, kcfg eventlog.Config, spec eventlog.TopicSpec, fresh bool) error {
	cl, err := eventlog.NewClient(kcfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if fresh {
		if err := logadmin.WaitReady(ctx, adm, 3); err != nil {
			return fmt.Errorf("chaos: the cluster did not become ready: %w", err)
		}
	}
	for i := 0; ; i++ {
		_, err = logadmin.Provision(ctx, adm, spec)
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		return fmt.Errorf("chaos: provision: %w", err)
	}
	if err := logadmin.PollReady(ctx, adm, 0, []string{spec.Commands, spec.Events}, nil); err != nil {
		return fmt.Errorf("chaos: topics not ready: %w", err)
	}
	return nil
}

// deleteTopics removes the run's topics from a cluster the suite shares.
func deleteTopics(kcfg eventlog.Config, spec eventlog.TopicSpec, logf func(string, ...any)) {
	cl, err := eventlog.NewClient(kcfg)
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).DeleteTopics(ctx, spec.Commands, spec.Events); err != nil {
		logf("could not delete topics %s, %s: %v", spec.Commands, spec.Events, err)
	}
}

type services struct {
	fake                     *Proc
	deciders, apis, gateways []*Proc
}

func (s *services) all() []*Proc {
	return slices.Concat(s.deciders, s.apis, s.gateways)
}

func (s *services) stopAll() {
	var wg sync.WaitGroup
	for _, p := range append(s.all(), s.fake) {
		if p != nil {
			wg.Add(1)
			go func() { defer wg.Done(); p.Close() }()
		}
	}
	wg.Wait()
}

// serviceUsers creates a Kafka user for each role the run starts, grants
// it the role's ACLs on spec's topics, and returns the environment that
// makes a service authenticate as it.
func serviceUsers(ctx context.Context, kcfg eventlog.Config, spec eventlog.TopicSpec, dir string) (map[logadmin.Role][]string, error) {
	cl, err := eventlog.NewClient(kcfg)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	envs := map[logadmin.Role][]string{}
	for _, role := range []logadmin.Role{logadmin.RoleDecider, logadmin.RoleAPI, logadmin.RoleSlackGateway} {
		user := "assent-" + string(role)
		file := filepath.Join(dir, user+".password")
		password, err := NewPassword(file)
		if err != nil {
			return nil, err
		}
		if err := logadmin.UpsertUser(ctx, adm, user, password); err != nil {
			return nil, fmt.Errorf("chaos: %w", err)
		}
		if err := logadmin.GrantACLs(ctx, adm, "User:"+user, role, spec); err != nil {
			return nil, fmt.Errorf("chaos: %w", err)
		}
		envs[role] = []string{eventlog.EnvUser + "=" + user, eventlog.EnvPasswordFile + "=" + file}
	}
	return envs, nil
}

func startServices(ctx context.Context, cfg Config, bin string, brokers []string, spec eventlog.TopicSpec, secret string, users map[logadmin.Role][]string) (*services, error) {
	dir := filepath.Join(cfg.Dir, "services")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	s := &services{}
	common := []string{
		"ASSENT_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"ASSENT_COMMANDS_TOPIC=" + spec.Commands,
		"ASSENT_EVENTS_TOPIC=" + spec.Events,
		"ASSENT_PARTITIONS=12",
	}
	var slackURL string
	if !cfg.noGateways {
		urlFile := filepath.Join(dir, "fake-slack.url")
		fake, err := NewProc(dir, bin+"/fake-slack", "fake-slack", "fake-slack", cfg.Prefix+"-fake-slack")
		if err != nil {
			return nil, err
		}
		fake.Args = []string{"serve", "--url-file", urlFile}
		s.fake = fake
		if err := fake.Start(); err != nil {
			return nil, err
		}
		for i := 0; i < 300 && slackURL == ""; i++ {
			b, _ := os.ReadFile(urlFile)
			slackURL = strings.TrimSpace(string(b))
			if slackURL == "" {
				sleep(ctx, 100*time.Millisecond)
			}
		}
		if slackURL == "" {
			s.stopAll()
			return nil, fmt.Errorf("chaos: the fake Slack did not start:\n%s", tailFile(fake.Log, 20))
		}
	}
	policy := filepath.Join(cfg.Root, "test/chaos/testdata/policy.yaml")
	deciderEnv := cfg.deciderEnv
	if len(cfg.Brokers) == 0 {
		// The suite's own cluster allows the deployments' short session
		// (infra/kafka/node.properties.tmpl); a cluster it is given may
		// not, and gets the decider's default.
		deciderEnv = append([]string{"ASSENT_SESSION_TIMEOUT=1500ms"}, deciderEnv...)
	}
	tokens := filepath.Join(cfg.Root, "infra/tokens/demo-tokens.yaml")
	for i := 1; i <= 2; i++ {
		d, err := NewProc(dir, bin+"/decider", "decider", fmt.Sprintf("decider-%d", i), fmt.Sprintf("%s-decider-%d", cfg.Prefix, i),
			append(append(append(slices.Clone(common), users[logadmin.RoleDecider]...),
				"ASSENT_DECIDER_GROUP="+logadmin.DeciderGroupPrefix+"-"+cfg.Prefix, "ASSENT_POLICY_FILE="+policy), deciderEnv...)...)
		if err != nil {
			return nil, err
		}
		a, err := NewProc(dir, bin+"/api", "api", fmt.Sprintf("api-%d", i), fmt.Sprintf("%s-api-%d", cfg.Prefix, i),
			append(append(append(slices.Clone(common), users[logadmin.RoleAPI]...), "ASSENT_TOKENS_FILE="+tokens,
				fmt.Sprintf("ASSENT_WRITE_RATE=%d", floodWriteRate)), cfg.apiEnv...)...)
		if err != nil {
			return nil, err
		}
		g, err := NewProc(dir, bin+"/slack-gateway", "slack-gateway", fmt.Sprintf("gateway-%d", i), fmt.Sprintf("%s-gateway-%d", cfg.Prefix, i),
			append(append(slices.Clone(common), users[logadmin.RoleSlackGateway]...),
				"ASSENT_SLACK_GROUP="+logadmin.SlackGatewayGroupPrefix+"-"+cfg.Prefix, "ASSENT_SLACK_BOT_TOKEN=xoxb-assent-test",
				"ASSENT_SLACK_SIGNING_SECRET="+secret, "ASSENT_SLACK_API_URL="+slackURL, "ASSENT_SLACK_RATE_SCALE=1000")...)
		if err != nil {
			return nil, err
		}
		d.Supervise, a.Supervise, g.Supervise = true, true, true
		s.deciders, s.apis = append(s.deciders, d), append(s.apis, a)
		if !cfg.noGateways {
			s.gateways = append(s.gateways, g)
		}
	}
	for _, p := range s.all() {
		if err := p.Start(); err != nil {
			s.stopAll()
			return nil, err
		}
	}
	if err := readyAll(ctx, s.all()...); err != nil {
		s.stopAll()
		return nil, err
	}
	return s, nil
}

// settle reads the log until every command a client was told was accepted
// has its outcome, or two minutes pass (the checker then reports I1).
func settle(ctx context.Context, kcfg eventlog.Config, topic string, keys *wire.KeyRing, ops []Op) ([]systest.Record, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		log, err := systest.ReadLog(ctx, kcfg, topic)
		if err != nil {
			return nil, fmt.Errorf("chaos: read the events topic: %w", err)
		}
		auth, _ := Authenticated(log, topic, keys)
		res := systest.Check(auth, nil)
		missing := 0
		for _, op := range ops {
			if op.Write() && op.Command != "" && (op.Outcome == OK || op.Outcome == Accepted) {
				if !res.Decided[op.Request][op.Command] && (op.Kind != KindSubmit || res.States[op.Request].Status == approval.StatusNone) {
					missing++
				}
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			return log, nil
		}
		sleep(ctx, time.Second)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// quiesce waits, bounded, until the topic's last stable offsets have not
// moved for five seconds.
func quiesce(ctx context.Context, kcfg eventlog.Config, topic string) error {
	cl, err := eventlog.NewClient(kcfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var last map[int32]int64
	still := time.Now()
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); {
		ends, err := adm.ListCommittedOffsets(ctx, topic)
		if err == nil {
			now := map[int32]int64{}
			ends.Each(func(o kadm.ListedOffset) { now[o.Partition] = o.Offset })
			if !maps.Equal(now, last) {
				last, still = now, time.Now()
			} else if time.Since(still) >= 5*time.Second {
				return nil
			}
		}
		sleep(ctx, 500*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil // still moving: the checker will say where
}

// converge reads every request from an API replica's list until its
// views equal the fold, or a minute passes (the checker then reports I5).
func converge(ctx context.Context, p *Proc, fold map[string]approval.State) (map[string]View, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		views, err := listAll(ctx, p)
		if err == nil {
			same := true
			for rid, st := range fold {
				if st.Status == approval.StatusNone {
					continue
				}
				if v, ok := views[rid]; !ok || v.Diff(st) != "" {
					same = false
					break
				}
			}
			if same || time.Now().After(deadline) {
				return views, nil
			}
		} else if time.Now().After(deadline) {
			return nil, fmt.Errorf("chaos: list requests on %s: %w", p.Name, err)
		}
		sleep(ctx, time.Second)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

func listAll(ctx context.Context, p *Proc) (map[string]View, error) {
	hc := &http.Client{Timeout: 30 * time.Second}
	out := map[string]View{}
	cursor := ""
	for page := 0; page < 100000; page++ {
		u := p.URL() + "/v1/requests?limit=200"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+billing.token)
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		raw, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: %d %s", u, resp.StatusCode, raw)
		}
		var body struct {
			Items []struct {
				ID string `json:"id"`
				View
			} `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			return nil, err
		}
		for _, it := range body.Items {
			out[it.ID] = it.View
		}
		if body.NextCursor == "" {
			return out, nil
		}
		cursor = body.NextCursor
	}
	return out, nil
}
