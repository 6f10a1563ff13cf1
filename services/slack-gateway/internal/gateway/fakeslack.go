package gateway

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/assent-dev/assent/services/slack-gateway/internal/slackfake"
)

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

// fakeSlack runs a local stand-in for Slack's Web API, so that the demo
// shows cards without a Slack workspace. Its URL goes to --url-file.
func fakeSlack(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fake-slack", flag.ContinueOnError)
	fs.SetOutput(stdout)
	urlFile := fs.String("url-file", "", "write the API URL to this file once serving")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s := slackfake.Start(demoUsers, demoChannels)
	defer s.Close()
	if *urlFile != "" {
		if err := os.WriteFile(*urlFile, []byte(s.URL()+"\n"), 0o644); err != nil {
			return fmt.Errorf("fake-slack: %w", err)
		}
	}
	fmt.Fprintf(stdout, "fake Slack Web API on %s (bot token %s); what was posted: %s_messages\n", s.URL(), slackfake.Token, s.URL())
	<-ctx.Done()
	return nil
}
