// Package sdktest starts the Assent services that the SDK's integration
// tests talk to: deciders and api replicas, as processes built from this
// checkout, on a test's own topics, consumer group and transactional ids.
//
// They run as processes rather than in-process because their code lives
// in internal packages of their service modules, which Go lets no other
// module import; test/systest builds and supervises them.
package sdktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/assent-dev/assent/test/tb"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/test/kafkatest"
	"github.com/assent-dev/assent/test/systest"
)

// Cluster is a test's topics and the services running on them.
type Cluster struct {
	Topics   eventlog.TopicSpec
	Kafka    eventlog.Config
	Deciders []*systest.Proc
	APIs     []*systest.Proc
}

// Start provisions unique topics of 12 partitions and starts the given
// numbers of deciders and api replicas, with infra/policies/example.yaml
// and infra/tokens/demo-tokens.yaml, and waits until every one is ready.
// Everything is stopped when the test ends.
func Start(t tb.TB, deciders, apis int) *Cluster {
	t.Helper()
	topics := kafkatest.NewTopics(t, 12)
	brokers := kafkatest.Brokers(t)
	services := []string{"decider"}
	if apis > 0 {
		services = append(services, "api")
	}
	bin := systest.Build(t, services...)
	root := systest.RepoRoot()
	// Instance names become transactional ids and client ids on a shared
	// cluster, so they must not collide with any other test's.
	var random [4]byte
	_, _ = rand.Read(random[:])
	tag := "sdk-" + hex.EncodeToString(random[:])
	common := []string{
		"ASSENT_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"ASSENT_COMMANDS_TOPIC=" + topics.Commands,
		"ASSENT_EVENTS_TOPIC=" + topics.Events,
		fmt.Sprintf("ASSENT_PARTITIONS=%d", topics.Partitions),
	}
	c := &Cluster{Topics: topics, Kafka: kafkatest.Config(t, tag)}
	for i := range deciders {
		p := systest.NewProc(t, filepath.Join(bin, "decider"), fmt.Sprintf("%s-decider-%d", tag, i+1), append(common,
			"ASSENT_DECIDER_GROUP="+tag+"-deciders",
			"ASSENT_POLICY_FILE="+filepath.Join(root, "infra/policies/example.yaml"))...)
		c.Deciders = append(c.Deciders, p)
	}
	for i := range apis {
		p := systest.NewProc(t, filepath.Join(bin, "api"), fmt.Sprintf("%s-api-%d", tag, i+1), append(common,
			"ASSENT_TOKENS_FILE="+filepath.Join(root, "infra/tokens/demo-tokens.yaml"))...)
		c.APIs = append(c.APIs, p)
	}
	all := append(append([]*systest.Proc{}, c.Deciders...), c.APIs...)
	for _, p := range all {
		p.Start()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for _, p := range all {
		if err := p.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// URLs are the api replicas' base URLs.
func (c *Cluster) URLs() []string {
	var urls []string
	for _, p := range c.APIs {
		urls = append(urls, p.URL())
	}
	return urls
}
