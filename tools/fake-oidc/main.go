// Command fake-oidc is a local OpenID Connect provider for the console's
// demo: scripts/up starts it, and it signs in any of the demo people of
// infra/policies/example.yaml (and an auditor) at the click of a name.
//
// FOR THE LOCAL DEMO ONLY: there is no password. Point the console at a
// real identity provider (ASSENT_OIDC_ISSUER, ASSENT_OIDC_CLIENT_ID,
// ASSENT_OIDC_CLIENT_SECRET_FILE) for anything else.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/assent-dev/assent/test/fakeoidc"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fake-oidc:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("fake-oidc", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8690", "listen address (loopback only)")
	clientID := fs.String("client-id", "assent-console", "the console's client id")
	secretFile := fs.String("client-secret-file", "", "file holding the console's client secret (required)")
	urlFile := fs.String("url-file", "", "write the issuer URL here once listening")
	fs.Usage = func() {
		_, _ = fmt.Fprintln(fs.Output(), "usage: fake-oidc --client-secret-file FILE [--addr 127.0.0.1:8690] [--client-id assent-console] [--url-file FILE]")
		_, _ = fmt.Fprintln(fs.Output(), "\nA local OpenID Connect provider for the console's demo. FOR THE LOCAL DEMO ONLY: anyone may sign in as any demo person, with no password.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *secretFile == "" {
		return errors.New("--client-secret-file is required")
	}
	b, err := os.ReadFile(*secretFile)
	if err != nil {
		return err
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return fmt.Errorf("%s is empty", *secretFile)
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--addr %s: the demo provider listens on a loopback address only", *addr)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv, err := fakeoidc.Start(ln, *clientID, secret, fakeoidc.DemoUsers())
	if err != nil {
		return err
	}
	fmt.Printf("fake-oidc: issuer %s (client id %s; LOCAL DEMO ONLY)\n", srv.Issuer(), *clientID)
	if *urlFile != "" {
		if err := os.WriteFile(*urlFile, []byte(srv.Issuer()+"\n"), 0o600); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return srv.Shutdown()
}
