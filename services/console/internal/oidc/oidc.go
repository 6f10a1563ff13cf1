// Package oidc is the console's OpenID Connect relying party: the
// authorization code flow with PKCE (S256), a nonce bound to the ID token,
// and the state bound to the browser by an encrypted cookie (see
// package session). It uses coreos/go-oidc for discovery and ID token
// verification (signature against the provider's JWKS, issuer, audience,
// expiry) and x/oauth2 for the code exchange.
package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/assent-dev/assent/libs/approval"
)

// Errors, each a different failure mode (and outcome label).
var (
	// ErrUnavailable: the provider's discovery document cannot be read.
	ErrUnavailable = errors.New("oidc: the identity provider is unreachable")
	// ErrExchange: the token endpoint refused the code or failed.
	ErrExchange = errors.New("oidc: the code exchange failed")
	// ErrToken: the ID token is missing, or fails verification or the nonce.
	ErrToken = errors.New("oidc: the ID token is not valid")
	// ErrEmail: the ID token has no usable, verified email.
	ErrEmail = errors.New("oidc: the ID token has no verified email")
)

// Config configures a Client.
type Config struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	RedirectURL  string
	Scopes       []string
	GroupsClaim  string
	// HTTP is the client for the provider (default: 10s timeout).
	HTTP *http.Client
}

// Identity is who signed in.
type Identity struct {
	Principal string // user:<email>, lower case
	Name      string
	Groups    []string
}

// Client is the relying party. Discovery happens on first use and is
// retried (at most every 5 seconds) until it succeeds, so the console
// starts, and signed-in people keep working, while the provider is down.
type Client struct {
	cfg Config

	mu       sync.Mutex
	provider *gooidc.Provider
	oauth    *oauth2.Config
	verifier *gooidc.IDTokenVerifier
	lastTry  time.Time
	lastErr  error
}

// New returns a client; nothing is fetched yet.
func New(cfg Config) *Client {
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	return &Client{cfg: cfg}
}

func (c *Client) ctx(ctx context.Context) context.Context {
	return gooidc.ClientContext(ctx, c.cfg.HTTP)
}

// discover returns the provider's endpoints, discovering them if needed.
func (c *Client) discover(ctx context.Context) (*oauth2.Config, *gooidc.IDTokenVerifier, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.provider != nil {
		return c.oauth, c.verifier, nil
	}
	if time.Since(c.lastTry) < 5*time.Second && c.lastErr != nil {
		return nil, nil, c.lastErr
	}
	c.lastTry = time.Now()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := gooidc.NewProvider(c.ctx(dctx), c.cfg.Issuer)
	if err != nil {
		c.lastErr = fmt.Errorf("%w: %w", ErrUnavailable, err)
		return nil, nil, c.lastErr
	}
	c.provider = p
	c.oauth = &oauth2.Config{
		ClientID: c.cfg.ClientID, ClientSecret: c.cfg.ClientSecret,
		Endpoint: p.Endpoint(), RedirectURL: c.cfg.RedirectURL, Scopes: c.cfg.Scopes,
	}
	c.verifier = p.Verifier(&gooidc.Config{ClientID: c.cfg.ClientID})
	return c.oauth, c.verifier, nil
}

// Discover fetches the provider's discovery document now (at start, so
// that a misconfiguration shows in the log early). An error is not fatal.
func (c *Client) Discover(ctx context.Context) error {
	_, _, err := c.discover(ctx)
	return err
}

// AuthURL is where to send the browser to sign in: the authorization
// endpoint with the state, the nonce and the S256 challenge of verifier.
func (c *Client) AuthURL(ctx context.Context, state, nonce, verifier string) (string, error) {
	oc, _, err := c.discover(ctx)
	if err != nil {
		return "", err
	}
	return oc.AuthCodeURL(state, gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), nil
}

// Exchange trades the code for tokens, verifies the ID token and its
// nonce, and returns who signed in.
func (c *Client) Exchange(ctx context.Context, code, verifier, nonce string) (Identity, error) {
	oc, v, err := c.discover(ctx)
	if err != nil {
		return Identity{}, err
	}
	ectx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	tok, err := oc.Exchange(c.ctx(ectx), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrExchange, err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return Identity{}, fmt.Errorf("%w: the token response has no id_token", ErrToken)
	}
	idt, err := v.Verify(c.ctx(ectx), raw)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrToken, err)
	}
	if idt.Nonce == "" || idt.Nonce != nonce {
		return Identity{}, fmt.Errorf("%w: the nonce does not match this sign-in", ErrToken)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrToken, err)
	}
	return identityOf(claims, c.cfg.GroupsClaim)
}

// maxGroups bounds the groups read from a token.
const maxGroups = 1000

func identityOf(claims map[string]any, groupsClaim string) (Identity, error) {
	email, _ := claims["email"].(string)
	if verified, present := claims["email_verified"]; present {
		// Some providers send "true" as a string.
		if b, ok := verified.(bool); (ok && !b) || (!ok && verified != "true") {
			return Identity{}, fmt.Errorf("%w: email_verified is false", ErrEmail)
		}
	}
	email = strings.TrimSpace(email)
	if email == "" || strings.Count(email, "@") != 1 || strings.HasPrefix(email, "@") || strings.HasSuffix(email, "@") {
		return Identity{}, fmt.Errorf("%w: the email claim is missing or not an address", ErrEmail)
	}
	p, err := approval.NormalizePrincipal(approval.KindUser + ":" + email)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrEmail, err)
	}
	id := Identity{Principal: p}
	if name, ok := claims["name"].(string); ok && len(name) <= 200 {
		id.Name = name
	}
	switch g := claims[groupsClaim].(type) {
	case []any:
		for _, v := range g {
			if s, ok := v.(string); ok && s != "" && len(s) <= 256 && len(id.Groups) < maxGroups {
				id.Groups = append(id.Groups, s)
			}
		}
	case string:
		if g != "" && len(g) <= 256 {
			id.Groups = []string{g}
		}
	}
	return id, nil
}
