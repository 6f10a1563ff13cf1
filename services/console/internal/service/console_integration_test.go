package service_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"

	"github.com/assent-dev/assent/libs/approval"
	"github.com/assent-dev/assent/libs/command"
	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/wire"
	"github.com/assent-dev/assent/services/console/internal/config"
	"github.com/assent-dev/assent/services/console/internal/service"
	"github.com/assent-dev/assent/test/browser"
	"github.com/assent-dev/assent/test/fakeoidc"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/systest"
)

const partitions = 4

// rig is the system under test: two deciders (processes), the demo OIDC
// provider, two console replicas (in-process) on topics of their own.
type rig struct {
	t        *testing.T
	topics   eventlog.TopicSpec
	brokers  []string
	consoles []string // base URLs
	writer   command.Writer
}

func startRig(t *testing.T) *rig {
	t.Helper()
	brokers := kafkatest.Brokers(t)
	browser.ExecPath(t) // fail (CI) or skip before starting anything
	topics := kafkatest.NewTopics(t, partitions)
	bin := systest.Build(t, "decider")
	root := systest.RepoRoot()
	r := &rig{t: t, topics: topics, brokers: brokers}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	group := "test-decider-" + topics.Commands
	for i := range 2 {
		p := systest.NewProc(t, filepath.Join(bin, "decider"), fmt.Sprintf("decider-%d-%s", i, topics.Commands),
			"ASSENT_KAFKA_BROKERS="+strings.Join(brokers, ","),
			"ASSENT_POLICY_FILE="+filepath.Join(root, "infra/policies/example.yaml"),
			"ASSENT_PARTITIONS="+fmt.Sprint(partitions),
			"ASSENT_COMMANDS_TOPIC="+topics.Commands,
			"ASSENT_EVENTS_TOPIC="+topics.Events,
			"ASSENT_DECIDER_GROUP="+group,
		)
		p.Env = append(p.Env, systest.DeciderKeyEnv()...)
		p.Start()
		require.NoError(t, p.WaitReady(ctx))
		t.Cleanup(func() {
			if t.Failed() {
				logs, _ := os.ReadFile(p.Log)
				t.Logf("%s log (tail):\n%s", p.Name, tail(string(logs), 30))
			}
		})
	}

	dir := t.TempDir()
	secretFile := filepath.Join(dir, "client-secret")
	require.NoError(t, os.WriteFile(secretFile, []byte("local-test-secret-"+hex.EncodeToString([]byte(t.Name()))), 0o600))
	keyFile := filepath.Join(dir, "session-keys")
	require.NoError(t, os.WriteFile(keyFile, []byte("# test session key\n"+strings.Repeat("ab", 32)+"\n"), 0o600))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	secret, _ := os.ReadFile(secretFile)
	idp, err := fakeoidc.Start(ln, "assent-console", string(secret), fakeoidc.DemoUsers())
	require.NoError(t, err)
	t.Cleanup(func() { _ = idp.Shutdown() })

	for i := range 2 {
		r.consoles = append(r.consoles, startConsole(t, r, idp.Issuer(), secretFile, keyFile, fmt.Sprintf("console-%d", i)))
	}
	for _, base := range r.consoles {
		require.NoError(t, waitReady(ctx, base))
	}
	cl := kafkatest.NewClient(t)
	r.writer = command.Writer{Source: command.SourceAPI, Sender: command.Kafka{Client: cl, Topic: topics.Commands, Signer: systest.DemoCommandSigner(t, systest.ServiceAPI)}}
	return r
}

// startConsole runs one console replica in-process until the test ends.
func startConsole(t *testing.T, r *rig, issuer, secretFile, keyFile, name string) string {
	t.Helper()
	root := systest.RepoRoot()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + ln.Addr().String()
	env := map[string]string{
		"ASSENT_KAFKA_USER": os.Getenv("ASSENT_KAFKA_USER"), "ASSENT_KAFKA_PASSWORD_FILE": os.Getenv("ASSENT_KAFKA_PASSWORD_FILE"),
		"ASSENT_KAFKA_BROKERS":            strings.Join(r.brokers, ","),
		"ASSENT_INSTANCE_ID":              name + "-" + r.topics.Commands,
		"ASSENT_HTTP_ADDR":                ln.Addr().String(),
		"ASSENT_CONSOLE_PUBLIC_URL":       base,
		"ASSENT_DATA_DIR":                 filepath.Join(t.TempDir(), name),
		"ASSENT_PARTITIONS":               fmt.Sprint(partitions),
		"ASSENT_COMMANDS_TOPIC":           r.topics.Commands,
		"ASSENT_EVENTS_TOPIC":             r.topics.Events,
		"ASSENT_OIDC_ISSUER":              issuer,
		"ASSENT_OIDC_CLIENT_ID":           "assent-console",
		"ASSENT_OIDC_CLIENT_SECRET_FILE":  secretFile,
		"ASSENT_CONSOLE_SESSION_KEY_FILE": keyFile,
		"ASSENT_CONSOLE_AUDITOR_GROUPS":   fakeoidc.AuditorGroup,
		"ASSENT_POLICY_FILE":              filepath.Join(root, "infra/policies/example.yaml"),
		"ASSENT_SEAL_KEYS_FILE":           systest.DemoKeysFile(),
		"ASSENT_COMMAND_KEY_FILE":         systest.DemoCommandKeyFile(systest.ServiceConsole),
		"ASSENT_COMMAND_KEY_ID":           systest.DemoCommandKeyID(systest.ServiceConsole),
		"ASSENT_WRITE_WAIT":               "20s",
		"ASSENT_CONSOLE_RATE_LIMIT":       "200",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	require.NoError(t, err)
	cfg.Listener = ln
	logs := &syncBuf{}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- service.Run(ctx, cfg, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, "%s stopped with an error", name)
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop within 30s", name)
		}
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", name, tail(logs.String(), 40))
		}
		require.NotContains(t, logs.String(), "local-test-secret", "%s logged the client secret", name)
		require.NotContains(t, logs.String(), strings.Repeat("ab", 32), "%s logged a session key", name)
	})
	return base
}

// submit writes a submit command as a backend service would (through the
// api's command path), with requester carol.
func (r *rig) submit(rid string, action approval.Action, reason string) {
	r.t.Helper()
	c := r.writer.New(wire.NewID(time.Now()), rid, "user:carol@example.com", approval.Submit{Action: action, Reason: reason})
	require.NoError(r.t, r.writer.Send(r.t.Context(), c))
}

func deploy(resource string) approval.Action {
	return approval.Action{Type: "deploy", Resource: resource, Environment: "production"}
}

// do runs browser steps with a deadline.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + (document.body ? document.body.innerText : "")`))
		browser.Screenshot(t, ctx, "failed-"+strings.NewReplacer(" ", "-", "'", "", "/", "-").Replace(what))
		t.Fatalf("%s: %v\npage:\n%s", what, err, text)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	require.NoError(t, err, expr)
	return v
}

// waitFor polls expr in the page until it is true, for at most 45s.
func waitFor(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 50*time.Second)
	defer cancel()
	_, err := chromedp.Run(sctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(45*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
	if err != nil {
		html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		t.Fatalf("%s: %s did not become true: %v\npage text:\n%s", what, expr, err, html)
	}
}

// openWhen loads url until cond (a JavaScript expression) holds in it:
// the page of a request that the deciders have not decided yet says it
// does not exist.
func openWhen(t *testing.T, ctx context.Context, url, cond string) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		do(t, ctx, "open "+url, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(`main`)))
		if eval[bool](t, ctx, cond) {
			synced(t, ctx)
			return
		}
		require.True(t, time.Now().Before(deadline), "%s: %s never held", url, cond)
		time.Sleep(200 * time.Millisecond)
	}
}

// synced waits until a live page's stream has told it that it shows what
// the projection holds: after that, a swap means a real change.
func synced(t *testing.T, ctx context.Context) {
	t.Helper()
	waitFor(t, ctx, "the live stream is in step", `!document.querySelector(".live-state") || document.querySelector(".live-state").textContent !== ""`)
}

// signIn goes through the whole OIDC flow in the browser: a console page,
// the sign-in page, the provider's page, back to the page asked for.
func signIn(t *testing.T, ctx context.Context, url, email, shot string) {
	t.Helper()
	do(t, ctx, "open "+url, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(`a.button[href^="/auth/start"]`)))
	if shot != "" {
		browser.Screenshot(t, ctx, shot)
		checkAxe(t, ctx, shot)
	}
	do(t, ctx, "sign in as "+email,
		chromedp.Click(chromedp.CSS(`a.button[href^="/auth/start"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[value="`+email+`"]`)),
		chromedp.Click(chromedp.CSS(`button[value="`+email+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`header .who`)),
	)
	who := eval[string](t, ctx, `document.querySelector("header .who strong").textContent`)
	require.Equal(t, email, who)
}

var (
	axeMu      sync.Mutex
	axeSummary []string
)

// checkAxe runs axe-core on the page and fails on any violation.
func checkAxe(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	res := browser.Axe(t, ctx)
	var lines []string
	for _, v := range res.Violations {
		lines = append(lines, v.String())
	}
	axeMu.Lock()
	axeSummary = append(axeSummary, fmt.Sprintf("%s: %d rules applied, %d passed, %d violations", name, res.Rules, res.Passes, len(res.Violations)))
	axeMu.Unlock()
	require.Empty(t, lines, "axe-core violations on %s", name)
	require.Greater(t, res.Passes, 10, "axe-core ran its rules on %s", name)
}

func metric(t *testing.T, base, line string) bool {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return false
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(b), line)
}

func TestIntegrationConsoleInBrowser(t *testing.T) {
	r := startRig(t)
	a, b := r.consoles[0], r.consoles[1]
	bctx := browser.New(t)
	alice := browser.Person(t, bctx)
	carol := browser.Person(t, bctx)

	// --- an approver signs in and approves from the inbox; the
	// requester's page, open on the other replica, updates live.
	r.submit("web-1", deploy("services/web"), "ship 1.2.3 to production")
	signIn(t, carol, b+"/requests/web-1", "carol@example.com", "01-sign-in")
	openWhen(t, carol, b+"/requests/web-1", `!!document.querySelector("#summary-h") && document.querySelector("#summary-h").innerText.includes("pending")`)
	browser.Screenshot(t, carol, "02-request-pending")
	checkAxe(t, carol, "02-request-pending")
	eval[bool](t, carol, `window.__sameDocument = true`)
	// The live stream is open on replica b before anyone votes.
	deadline := time.Now().Add(30 * time.Second)
	for !metric(t, b, "assent_console_live_streams 1") {
		require.True(t, time.Now().Before(deadline), "carol's page opened no live stream on %s", b)
		time.Sleep(100 * time.Millisecond)
	}

	signIn(t, alice, a+"/inbox", "alice@example.com", "")
	openWhen(t, alice, a+"/inbox", `!!document.querySelector('#inbox-list a[href="/requests/web-1"]')`)
	// The deadline counts down (console.js, allowed by the CSP).
	before := eval[string](t, alice, `document.querySelector("#inbox-list .countdown").textContent`)
	require.Contains(t, before, "left")
	waitFor(t, alice, "the deadline counts down", `document.querySelector("#inbox-list .countdown").textContent !== `+strconvQuote(before))
	browser.Screenshot(t, alice, "03-inbox")
	checkAxe(t, alice, "03-inbox")
	do(t, alice, "alice approves web-1 from the inbox",
		chromedp.Click(chromedp.JSPath(`document.querySelector('#inbox-list a[href="/requests/web-1"]').closest("li").querySelector('button[value="approve"]')`)),
		chromedp.WaitVisible(chromedp.CSS(`p.flash`)),
	)
	require.Contains(t, eval[string](t, alice, `document.querySelector("p.flash").innerText`), "Your approval is recorded")
	require.False(t, eval[bool](t, alice, `!!document.querySelector('#inbox-list a[href="/requests/web-1"]')`), "web-1 left alice's inbox")
	browser.Screenshot(t, alice, "04-inbox-after-approve")

	waitFor(t, carol, "carol's page on the other replica shows the approval live",
		`document.querySelector("#summary-h").innerText.includes("approved")`)
	require.True(t, eval[bool](t, carol, `window.__sameDocument === true`), "the page updated in place, without a reload")
	require.Contains(t, eval[string](t, carol, `document.querySelector("#request-live").innerText`), "alice@example.com")
	browser.Screenshot(t, carol, "05-request-approved-live")

	// --- a session works on either replica: carol's cookie, made by b,
	// opens her requests on a.
	do(t, carol, "carol's requests on the other replica", chromedp.Navigate(a+"/mine"), chromedp.WaitVisible(chromedp.CSS(`#mine-list`)))
	require.Contains(t, eval[string](t, carol, `document.querySelector("#mine-list").innerText`), "approved")
	browser.Screenshot(t, carol, "06-my-requests")
	checkAxe(t, carol, "06-my-requests")
	do(t, carol, "filter by status", chromedp.Navigate(a+"/mine?status=pending"), chromedp.WaitVisible(chromedp.CSS(`#mine-list`)))
	require.NotContains(t, eval[string](t, carol, `document.querySelector("#mine-list").innerText`), "services/web", "the filter leaves the approved request out")

	// --- alice's inbox, open, shows a new request live.
	synced(t, alice)
	eval[bool](t, alice, `window.__sameDocument = true`)
	r.submit("web-2", deploy("services/api"), "risky migration")
	waitFor(t, alice, "web-2 appears in alice's open inbox", `!!document.querySelector('#inbox-list a[href="/requests/web-2"]')`)
	require.True(t, eval[bool](t, alice, `window.__sameDocument === true`), "the inbox updated in place, without a reload")

	// --- a rejection without a comment shows a form error.
	do(t, alice, "alice opens web-2", chromedp.Navigate(a+"/requests/web-2"), chromedp.WaitVisible(chromedp.CSS(`#comment`)))
	synced(t, alice)
	do(t, alice, "alice rejects without a comment", chromedp.Click(chromedp.CSS(`button[value="reject"]`)), chromedp.WaitVisible(chromedp.CSS(`#vote-error`)))
	require.Contains(t, eval[string](t, alice, `document.querySelector("#vote-error").innerText`), "A rejection needs a comment")
	require.Equal(t, "true", eval[string](t, alice, `document.querySelector("#comment").getAttribute("aria-invalid")`))
	require.Contains(t, eval[string](t, alice, `document.querySelector("#summary-h").innerText`), "pending", "nothing was written")
	browser.Screenshot(t, alice, "07-reject-needs-comment")
	checkAxe(t, alice, "07-reject-needs-comment")
	do(t, alice, "alice rejects with a comment",
		chromedp.SendKeys(chromedp.CSS(`#comment`), "not during the freeze"),
		chromedp.Click(chromedp.CSS(`button[value="reject"]`)),
		chromedp.WaitVisible(chromedp.CSS(`p.flash`)),
	)
	waitFor(t, alice, "web-2 rejected", `document.querySelector("#summary-h").innerText.includes("rejected")`)
	require.Contains(t, eval[string](t, alice, `document.querySelector(".votes").innerText`), "not during the freeze")

	// --- an XSS attempt is rendered inert.
	hostile := `<script>window.__xss=1</script><img src=x onerror="window.__xss=2"> *bold* <https://evil.example|click here> <!channel>`
	act := deploy(`services/x<img src=y onerror="window.__xss=3">`)
	act.Details = json.RawMessage(`{"link":"javascript:window.__xss=4","mrkdwn":"<https://evil.example|click me> *bold* _it_","html":"<b onmouseover=\"window.__xss=5\">x</b><script>window.__xss=6</script>"}`)
	r.submit("xss-1", act, hostile)
	openWhen(t, alice, a+"/inbox", `!!document.querySelector('#inbox-list a[href="/requests/xss-1"]')`)
	require.True(t, eval[bool](t, alice, `typeof window.__xss === "undefined"`), "no hostile script ran on the inbox")
	require.Contains(t, eval[string](t, alice, `document.querySelector('#inbox-list a[href="/requests/xss-1"]').closest("li").querySelector(".reason").textContent`), hostile)
	do(t, alice, "alice opens the hostile request", chromedp.Navigate(a+"/requests/xss-1"), chromedp.WaitVisible(chromedp.CSS(`#reason`)))
	synced(t, alice)
	require.True(t, eval[bool](t, alice, `typeof window.__xss === "undefined"`), "no hostile script ran on the request page")
	require.Equal(t, hostile, eval[string](t, alice, `document.querySelector("#reason").textContent`), "the reason is shown as text, byte for byte")
	require.Equal(t, 0, eval[int](t, alice, `document.querySelectorAll("main img, main script, main b, a[href^='javascript:'], [onerror], [onmouseover]").length`),
		"no element came from the request's text")
	require.Equal(t, 3, eval[int](t, alice, `[...document.scripts].filter(s => s.src.startsWith(location.origin + "/static/")).length`))
	require.Equal(t, 3, eval[int](t, alice, `document.scripts.length`), "only the console's own scripts")
	details := eval[string](t, alice, `document.querySelector("table.details").innerText`)
	require.Contains(t, details, "javascript:window.__xss=4")
	require.Contains(t, details, "<https://evil.example|click me> *bold* _it_")
	require.Equal(t, 0, eval[int](t, alice, `document.querySelectorAll("table.details a").length`), "a javascript: or mrkdwn link is not a link")
	browser.Screenshot(t, alice, "08-xss-inert")
	checkAxe(t, alice, "08-xss-inert")

	// --- a form posted without its CSRF token is refused.
	do(t, alice, "alice's vote form without its token", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
			const f = document.querySelector("form.vote");
			f.querySelector('input[name="csrf"]').remove();
			f.querySelector("#comment").value = "forged";
			f.requestSubmit(f.querySelector('button[value="approve"]'));
			return true;
		})()`))
		return err
	}), chromedp.WaitVisible(chromedp.CSS(`.error[role="alert"]`)))
	require.Contains(t, eval[string](t, alice, `document.querySelector("h1").innerText`), "This form was refused")
	browser.Screenshot(t, alice, "09-csrf-refused")
	checkAxe(t, alice, "09-csrf-refused")
	do(t, alice, "xss-1 is still pending", chromedp.Navigate(a+"/requests/xss-1"), chromedp.WaitVisible(chromedp.CSS(`#summary-h`)))
	require.Contains(t, eval[string](t, alice, `document.querySelector("#summary-h").innerText`), "pending", "the refused form wrote nothing")
	require.True(t, metric(t, a, "assent_console_csrf_refusals_total 1"))

	// --- the keyboard alone: Tab to the Approve button, Enter.
	r.submit("web-kb", deploy("services/kb"), "keyboard only")
	openWhen(t, alice, a+"/inbox", `!!document.querySelector('#inbox-list a[href="/requests/web-kb"]')`)
	do(t, alice, "open web-kb", chromedp.Navigate(a+"/requests/web-kb"), chromedp.WaitVisible(chromedp.CSS(`#comment`)))
	synced(t, alice)
	first := true
	for range 80 {
		do(t, alice, "Tab", chromedp.KeyEvent(kb.Tab))
		if first {
			require.Equal(t, "Skip to content", eval[string](t, alice, `document.activeElement.textContent`), "the first Tab stop is the skip link")
			first = false
		}
		if eval[bool](t, alice, `document.activeElement.matches('form.vote button[value="approve"]')`) {
			break
		}
	}
	require.True(t, eval[bool](t, alice, `document.activeElement.matches('form.vote button[value="approve"]')`), "Tab reaches the Approve button")
	require.True(t, eval[bool](t, alice, `getComputedStyle(document.activeElement).outlineStyle !== "none"`), "focus is visible")
	do(t, alice, "Enter", chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.CSS(`p.flash`)))
	waitFor(t, alice, "web-kb approved", `document.querySelector("#summary-h").innerText.includes("approved")`)

	// --- with JavaScript off, a vote still works (only live updates need it).
	bob := browser.Person(t, bctx)
	_, err := chromedp.Call(bob, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
	require.NoError(t, err)
	r.submit("web-nojs", deploy("services/nojs"), "no javascript")
	signIn(t, bob, b+"/inbox", "bob@example.com", "")
	deadline = time.Now().Add(45 * time.Second)
	for {
		do(t, bob, "reload bob's inbox", chromedp.Navigate(b+"/inbox"), chromedp.WaitVisible(chromedp.CSS(`#inbox-list`)))
		nodes, err := chromedp.Run(bob, chromedp.Nodes(chromedp.CSS(`#inbox-list a[href="/requests/web-nojs"]`), chromedp.AtLeast(0)))
		require.NoError(t, err)
		if len(nodes) > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "web-nojs never reached bob's inbox")
		time.Sleep(200 * time.Millisecond)
	}
	do(t, bob, "bob approves without JavaScript", chromedp.Navigate(b+"/requests/web-nojs"),
		chromedp.Click(chromedp.CSS(`button[value="approve"]`)), chromedp.WaitVisible(chromedp.CSS(`p.flash`)))
	text, err := chromedp.Run(bob, chromedp.Text(chromedp.CSS(`#summary-h`)))
	require.NoError(t, err)
	require.Contains(t, text, "approved")
	browser.Screenshot(t, bob, "10-no-javascript")

	// --- an auditor: search, export (equal to `auditor export` for the
	// same range), a request at a time, the verification summary.
	olivia := browser.Person(t, bctx)
	from := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	to := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	q := url.Values{"search": {"1"}, "from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}}
	signIn(t, olivia, a+"/audit?"+q.Encode(), "olivia@example.com", "")
	waitFor(t, olivia, "the search lists events", `document.querySelectorAll("table.list tbody tr").length > 3`)
	browser.Screenshot(t, olivia, "11-audit")
	checkAxe(t, olivia, "11-audit")
	abin := systest.Build(t, "auditor")
	auditorExport := func(format string) string {
		cmd := exec.Command(filepath.Join(abin, "auditor"), "export", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "--format", format)
		cmd.Env = append(os.Environ(), "ASSENT_KAFKA_BROKERS="+strings.Join(r.brokers, ","), "ASSENT_EVENTS_TOPIC="+r.topics.Events,
			"ASSENT_COMMANDS_TOPIC="+r.topics.Commands, fmt.Sprintf("ASSENT_PARTITIONS=%d", partitions), "ASSENT_SEAL_KEYS_FILE="+systest.DemoKeysFile())
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		require.NoError(t, cmd.Run(), errb.String())
		return out.String()
	}
	for _, format := range []string{"csv", "jsonl"} {
		want := auditorExport(format)
		require.Greater(t, strings.Count(want, "\n"), 10, "the log has events to export")
		exp := url.Values{"from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}, "format": {format}}
		var got string
		deadline := time.Now().Add(45 * time.Second)
		for {
			// The browser's own fetch, with olivia's session.
			got = eval[string](t, olivia, `fetch("/audit/export?`+exp.Encode()+`", {credentials: "same-origin"}).then(r => r.text())`)
			if got == want || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond) // the audit projection catches up with the log auditor export read
		}
		require.Equal(t, want, got, "the console's %s export equals auditor export for the same range", format)
	}
	at := time.Now().UTC().Format(time.RFC3339Nano)
	do(t, olivia, "web-1 at a time", chromedp.Navigate(a+"/audit/state?"+url.Values{"request": {"web-1"}, "at": {at}}.Encode()),
		chromedp.WaitVisible(chromedp.CSS(`#asof-h`)))
	require.Contains(t, eval[string](t, olivia, `document.querySelector("#asof-h").innerText`), "approved")
	browser.Screenshot(t, olivia, "12-audit-state")
	checkAxe(t, olivia, "12-audit-state")
	do(t, olivia, "web-1's timeline", chromedp.Navigate(a+"/requests/web-1"), chromedp.WaitVisible(chromedp.CSS(`table.timeline`)))
	waitFor(t, olivia, "web-1's chain is verified", `document.querySelector(".verification").innerText.includes("verified")`)
	require.GreaterOrEqual(t, eval[int](t, olivia, `document.querySelectorAll("table.timeline tbody tr").length`), 3)
	browser.Screenshot(t, olivia, "13-request-verified")

	// carol is no auditor: the audit pages refuse her.
	do(t, carol, "carol tries the audit page", chromedp.Navigate(a+"/audit"), chromedp.WaitVisible(chromedp.CSS(`h1`)))
	require.Contains(t, eval[string](t, carol, `document.querySelector("h1").innerText`), "Auditors only")

	// --- sign out.
	do(t, alice, "alice signs out", chromedp.Navigate(a+"/inbox"), chromedp.Click(chromedp.CSS(`header form button`)),
		chromedp.WaitVisible(chromedp.CSS(`a.button[href^="/auth/start"]`)))
	require.Contains(t, eval[string](t, alice, `document.body.innerText`), "You are signed out")
	browser.Screenshot(t, alice, "14-signed-out")
	checkAxe(t, alice, "14-signed-out")
	do(t, alice, "the inbox asks to sign in again", chromedp.Navigate(a+"/inbox"), chromedp.WaitVisible(chromedp.CSS(`a.button[href^="/auth/start"]`)))

	axeMu.Lock()
	t.Logf("axe-core:\n  %s", strings.Join(axeSummary, "\n  "))
	axeMu.Unlock()
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func waitReady(ctx context.Context, base string) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", base, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type syncBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
