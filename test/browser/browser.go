// Package browser drives Debian's headless Chromium with chromedp for the
// console's browser tests: a fresh profile per test, the flags that keep
// Chromium off the network (the machine has none), screenshots saved as
// test artifacts, and axe-core (vendored, axe-4.14.1.min.js, MPL-2.0,
// from the npm registry) run inside the page.
//
// Under CI=true a missing Chromium fails the test; elsewhere it skips
// (scripts/test installs Debian's chromium).
package browser

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/assent-dev/assent/test/tb"

	"github.com/chromedp/chromedp"
)

//go:embed axe-4.14.1.min.js
var axeSource string

// ExecPath finds Chromium: $ASSENT_CHROMIUM, /usr/bin/chromium, or
// chromium on the PATH.
func ExecPath(t tb.TB) string {
	t.Helper()
	for _, p := range []string{os.Getenv("ASSENT_CHROMIUM"), "/usr/bin/chromium"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("browser: Chromium is missing; scripts/test installs Debian's chromium (apt-get install chromium)")
	}
	t.Skip("browser: Chromium is missing; apt-get install chromium, or run scripts/test")
	return ""
}

// New starts a headless Chromium with a fresh profile for the test and
// returns a tab's context; everything stops when the test ends.
func New(t tb.TB) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ExecPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,InterestFeedContentSuggestions"),
		chromedp.WindowSize(1280, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browser: start Chromium: %v", err)
	}
	return ctx
}

// Person returns a tab with its own cookie jar (a new browser context) in
// the browser of ctx: a second person at another desk.
func Person(t tb.TB, ctx context.Context) context.Context {
	t.Helper()
	pctx, cancel := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(pctx); err != nil {
		t.Fatalf("browser: new context: %v", err)
	}
	return pctx
}

var (
	artifactsOnce sync.Once
	artifactsDir  string
)

// Artifacts is where screenshots go: $ASSENT_ARTIFACTS_DIR, or a
// temporary directory that is kept (and printed) for a person to look at.
func Artifacts(t tb.TB) string {
	t.Helper()
	artifactsOnce.Do(func() {
		dir := os.Getenv("ASSENT_ARTIFACTS_DIR")
		if dir == "" {
			d, err := os.MkdirTemp("", "assent-console-artifacts-")
			if err != nil {
				t.Fatal(err)
			}
			dir = d
		}
		if err := os.MkdirAll(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		artifactsDir = dir
		fmt.Fprintf(os.Stderr, "browser: screenshots in %s\n", dir)
	})
	return artifactsDir
}

// Screenshot saves a full-page PNG of the tab as <name>.png in Artifacts
// and returns its path.
func Screenshot(t tb.TB, ctx context.Context, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("browser: screenshot %s: %v", name, err)
	}
	path := filepath.Join(Artifacts(t), name+".png")
	if err := os.WriteFile(path, png, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	return path
}

// Violation is one axe-core rule a page breaks.
type Violation struct {
	ID      string `json:"id"`
	Impact  string `json:"impact"`
	Help    string `json:"help"`
	HelpURL string `json:"helpUrl"`
	Nodes   []struct {
		Target         []any  `json:"target"`
		HTML           string `json:"html"`
		FailureSummary string `json:"failureSummary"`
	} `json:"nodes"`
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s", v.ID, v.Impact, v.Help)
	for _, n := range v.Nodes {
		fmt.Fprintf(&b, "\n    %v %s\n      %s", n.Target, n.HTML, strings.ReplaceAll(n.FailureSummary, "\n", "\n      "))
	}
	return b.String()
}

// Result is what axe-core reports for a page.
type Result struct {
	Violations []Violation
	Passes     int // rules that passed
	Rules      int // rules that applied (passed or violated)
}

// Axe runs axe-core (WCAG 2.0, 2.1 and 2.2 A and AA, and best practices)
// on the tab's page and returns its findings.
func Axe(t tb.TB, ctx context.Context) Result {
	t.Helper()
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](axeSource+";\ntypeof axe === 'object'"))
	if err != nil || !loaded {
		t.Fatalf("browser: load axe-core: %v", err)
	}
	run := `axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}})
		.then(r => ({violations: r.violations, passes: r.passes.length}))`
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	raw, err := chromedp.Run(actx, chromedp.Evaluate[[]byte](run, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("browser: run axe-core: %v", err)
	}
	var out struct {
		Violations []Violation `json:"violations"`
		Passes     int         `json:"passes"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("browser: axe-core result: %v", err)
	}
	return Result{Violations: out.Violations, Passes: out.Passes, Rules: out.Passes + len(out.Violations)}
}
