// Command fake-slack is a local stand-in for Slack, for the demo and for
// trying the gateway without a Slack workspace. It is a tool, never part of
// a production binary.
//
//	fake-slack serve [--url-file FILE]   Slack's Web API with the people and
//	                                     channels of infra/policies/example.yaml
//	fake-slack sign-click --request ID --user U0ALICE [--action approve|reject]
//	                                     print a curl command that sends the
//	                                     gateway a signed click
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/assent-dev/assent/libs/slackport"
	"github.com/assent-dev/assent/test/slackfake"
)

const usage = `usage: fake-slack serve [--url-file FILE]
       fake-slack sign-click --request ID --user SLACK_USER [--action approve|reject]

serve runs a local stand-in for Slack's Web API with the people and
channels of infra/policies/example.yaml (users U0ALICE, U0BOB, ...); its
/_messages shows what was posted. scripts/up runs it unless
ASSENT_SLACK_BOT_TOKEN names a real Slack app.

sign-click prints a curl command that sends the gateway on
ASSENT_HTTP_ADDR (default 127.0.0.1:8380) a click signed with
ASSENT_SLACK_SIGNING_SECRET, as Slack would.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fake-slack:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("a command is required\n\n" + strings.TrimSuffix(usage, "\n")) // main adds the newline
	}
	switch args[0] {
	case "-h", "--help", "help":
		_, err := io.WriteString(stdout, usage)
		return err
	case "serve":
		return serve(ctx, args[1:], stdout)
	case "sign-click":
		return signClick(args[1:], getenv, stdout)
	default:
		return fmt.Errorf("unknown command %q\n\n%s", args[0], strings.TrimSuffix(usage, "\n"))
	}
}

// demoUsers are the people of infra/policies/example.yaml, with Slack ids
// U0<NAME>.
var demoUsers = func() []slackfake.User {
	var out []slackfake.User
	for _, n := range []string{"alice", "bob", "carol", "dana", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory"} {
		out = append(out, slackfake.User{ID: "U0" + strings.ToUpper(n), Name: n, Email: n + "@example.com"})
	}
	return out
}()

// demoChannels are the channels of infra/policies/example.yaml.
var demoChannels = map[string]string{
	"C0DEPLOYS": "deploys", "C0SECALERTS": "security-alerts", "C0DBAWRITES": "db-writes", "C0PRODCONFIG": "prod-config",
}

func serve(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fake-slack serve", flag.ContinueOnError)
	fs.SetOutput(stdout)
	urlFile := fs.String("url-file", "", "write the API URL to this file once serving")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := slackfake.Start(demoUsers, demoChannels)
	defer s.Close()
	if *urlFile != "" {
		if err := os.WriteFile(*urlFile, []byte(s.URL()+"\n"), 0o600); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	_, _ = fmt.Fprintf(stdout, "fake Slack Web API on %s (bot token %s); what was posted: %s_messages\n", s.URL(), slackfake.Token, s.URL())
	<-ctx.Done()
	return nil
}

func signClick(args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fake-slack sign-click", flag.ContinueOnError)
	fs.SetOutput(stdout)
	rid := fs.String("request", "", "the request id (required)")
	user := fs.String("user", "", "the Slack user id of the clicker, e.g. U0ALICE (required)")
	action := fs.String("action", "approve", "approve (a vote) or reject (opens the reason modal)")
	channel := fs.String("channel", "C0DEPLOYS", "the channel the click came from")
	team := fs.String("team", "T0ASSENT", "the Slack workspace id")
	if err := fs.Parse(args); err != nil {
		return err
	}
	secret := getenv("ASSENT_SLACK_SIGNING_SECRET")
	addr := getenv("ASSENT_HTTP_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8380"
	}
	if *rid == "" || *user == "" || secret == "" || (*action != "approve" && *action != "reject") {
		return errors.New("sign-click: --request and --user are required, --action is approve or reject, and ASSENT_SLACK_SIGNING_SECRET must be set")
	}
	actionID := slackport.ActionApprove
	if *action == "reject" {
		actionID = slackport.ActionReject
	}
	c := slackport.Click{Team: *team, User: *user, Channel: *channel, TriggerID: "trigger." + strconv.FormatInt(time.Now().UnixNano(), 10),
		ActionID: actionID, RequestID: *rid}
	body := c.Body()
	h := slackport.Sign(secret, time.Now(), body)
	_, err := fmt.Fprintf(stdout, "curl -sS -i http://%s/slack/interactivity \\\n  -H 'X-Slack-Request-Timestamp: %s' \\\n  -H 'X-Slack-Signature: %s' \\\n  -H 'Content-Type: application/x-www-form-urlencoded' \\\n  --data-raw '%s'\n",
		addr, h.Get("X-Slack-Request-Timestamp"), h.Get("X-Slack-Signature"), strings.ReplaceAll(string(body), "'", `'\''`))
	return err
}
