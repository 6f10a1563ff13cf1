package infra_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	v1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/assent-dev/assent/libs/eventlog"
	"github.com/assent-dev/assent/libs/logadmin"
	"github.com/assent-dev/assent/libs/wire"
)

// Strimzi's resources (kafka.strimzi.io/v1beta2), mirrored with only the
// fields infra/k8s uses, so that strict decoding refuses a misspelt or
// misplaced field. Field names follow Strimzi's CRD schemas.
type (
	strimziKafka struct {
		v1.TypeMeta `json:",inline"`
		Metadata    v1.ObjectMeta `json:"metadata"`
		Spec        struct {
			Kafka struct {
				Version         string `json:"version"`
				MetadataVersion string `json:"metadataVersion"`
				Rack            struct {
					TopologyKey string `json:"topologyKey"`
				} `json:"rack"`
				Listeners []struct {
					Name           string `json:"name"`
					Port           int    `json:"port"`
					Type           string `json:"type"`
					TLS            bool   `json:"tls"`
					Authentication struct {
						Type string `json:"type"`
					} `json:"authentication"`
				} `json:"listeners"`
				Authorization struct {
					Type       string   `json:"type"`
					SuperUsers []string `json:"superUsers"`
				} `json:"authorization"`
				Config map[string]any `json:"config"`
			} `json:"kafka"`
			EntityOperator struct {
				TopicOperator *struct{} `json:"topicOperator"`
				UserOperator  *struct{} `json:"userOperator"`
			} `json:"entityOperator"`
		} `json:"spec"`
	}
	strimziNodePool struct {
		v1.TypeMeta `json:",inline"`
		Metadata    v1.ObjectMeta `json:"metadata"`
		Spec        struct {
			Replicas int      `json:"replicas"`
			Roles    []string `json:"roles"`
			Storage  struct {
				Type    string `json:"type"`
				Volumes []struct {
					ID            int    `json:"id"`
					Type          string `json:"type"`
					Size          string `json:"size"`
					DeleteClaim   bool   `json:"deleteClaim"`
					KraftMetadata string `json:"kraftMetadata"`
				} `json:"volumes"`
			} `json:"storage"`
			Resources corev1.ResourceRequirements `json:"resources"`
		} `json:"spec"`
	}
	strimziUser struct {
		v1.TypeMeta `json:",inline"`
		Metadata    v1.ObjectMeta `json:"metadata"`
		Spec        struct {
			Authentication struct {
				Type string `json:"type"`
			} `json:"authentication"`
			Authorization *struct {
				Type string `json:"type"`
				ACLs []struct {
					Resource struct {
						Type        string `json:"type"`
						Name        string `json:"name"`
						PatternType string `json:"patternType"`
					} `json:"resource"`
					Operations []string `json:"operations"`
					Host       string   `json:"host"`
				} `json:"acls"`
			} `json:"authorization"`
		} `json:"spec"`
	}
	strimziTopic struct {
		v1.TypeMeta `json:",inline"`
		Metadata    v1.ObjectMeta `json:"metadata"`
		Spec        struct {
			Partitions int            `json:"partitions"`
			Replicas   int            `json:"replicas"`
			Config     map[string]any `json:"config"`
		} `json:"spec"`
	}
)

// manifests are every document of infra/k8s, decoded strictly into the
// Kubernetes API type of its kind.
type manifests struct {
	deployments []*appsv1.Deployment
	pdbs        []*policyv1.PodDisruptionBudget
	services    []*corev1.Service
	secrets     map[string]*corev1.Secret
	configMaps  map[string]*corev1.ConfigMap
	kafkas      []*strimziKafka
	pools       []*strimziNodePool
	topics      []*strimziTopic
	users       []*strimziUser
	policies    []*networkingv1.NetworkPolicy
	namespaces  []*corev1.Namespace
}

// hasUser reports whether a KafkaUser of this name is in the manifests.
func (m manifests) hasUser(name string) bool {
	for _, u := range m.users {
		if u.Metadata.Name == name {
			return true
		}
	}
	return false
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(), "infra", "k8s", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	m := manifests{secrets: map[string]*corev1.Secret{}, configMaps: map[string]*corev1.ConfigMap{}}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		for i, doc := range bytes.Split(raw, []byte("\n---\n")) {
			where := fmt.Sprintf("%s document %d", filepath.Base(f), i+1)
			var tm v1.TypeMeta
			require.NoError(t, yaml.Unmarshal(doc, &tm), where)
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 Deployment":
				d := &appsv1.Deployment{}
				m.deployments, obj = append(m.deployments, d), d
			case "policy/v1 PodDisruptionBudget":
				p := &policyv1.PodDisruptionBudget{}
				m.pdbs, obj = append(m.pdbs, p), p
			case "v1 Service":
				s := &corev1.Service{}
				m.services, obj = append(m.services, s), s
			case "v1 Secret":
				obj = &corev1.Secret{}
			case "v1 ConfigMap":
				obj = &corev1.ConfigMap{}
			case "v1 Namespace":
				n := &corev1.Namespace{}
				m.namespaces, obj = append(m.namespaces, n), n
			case "networking.k8s.io/v1 NetworkPolicy":
				p := &networkingv1.NetworkPolicy{}
				m.policies, obj = append(m.policies, p), p
			case "kafka.strimzi.io/v1beta2 Kafka":
				k := &strimziKafka{}
				m.kafkas, obj = append(m.kafkas, k), k
			case "kafka.strimzi.io/v1beta2 KafkaNodePool":
				p := &strimziNodePool{}
				m.pools, obj = append(m.pools, p), p
			case "kafka.strimzi.io/v1beta2 KafkaUser":
				u := &strimziUser{}
				m.users, obj = append(m.users, u), u
			case "kafka.strimzi.io/v1beta2 KafkaTopic":
				k := &strimziTopic{}
				m.topics, obj = append(m.topics, k), k
			default:
				t.Fatalf("%s: kind %q %q has no check here; add it to loadManifests", where, tm.APIVersion, tm.Kind)
			}
			require.NoError(t, yaml.UnmarshalStrict(doc, obj), "%s: strict decoding into the %s type", where, tm.Kind)
			switch o := obj.(type) {
			case *corev1.Secret:
				m.secrets[o.Name] = o
			case *corev1.ConfigMap:
				m.configMaps[o.Name] = o
			}
		}
	}
	return m
}

// TestManifestsDeployEveryServiceHighlyAvailable decodes every document of
// infra/k8s into its Kubernetes API type with unknown fields refused
// (loadManifests), and checks what a highly available deployment of
// Assent needs.
func TestManifestsDeployEveryServiceHighlyAvailable(t *testing.T) {
	t.Parallel()
	m := loadManifests(t)

	var names []string
	for _, d := range m.deployments {
		names = append(names, d.Name)
	}
	require.ElementsMatch(t, []string{"api", "decider", "slack-gateway", "auditor", "kafka-health", "notifier", "console"}, names)

	for _, d := range m.deployments {
		where := "deployment " + d.Name
		require.Equal(t, "assent", d.Namespace, where)
		require.Empty(t, validation.IsDNS1123Label(d.Name), where)
		require.NotNil(t, d.Spec.Replicas, where)
		require.GreaterOrEqual(t, *d.Spec.Replicas, int32(2), "%s: at least two replicas", where)
		sel, err := v1.LabelSelectorAsSelector(d.Spec.Selector)
		require.NoError(t, err, where)
		require.True(t, sel.Matches(labels.Set(d.Spec.Template.Labels)), "%s: the selector matches the pod template", where)
		require.Equal(t, "assent", d.Spec.Template.Labels["app.kubernetes.io/part-of"], "%s: Prometheus finds pods by this label", where)
		require.Equal(t, d.Name, d.Spec.Template.Labels["app.kubernetes.io/name"], "%s: the job label of its metrics", where)
		require.NotNil(t, d.Spec.Strategy.RollingUpdate, where)
		require.Equal(t, "0", d.Spec.Strategy.RollingUpdate.MaxUnavailable.String(), "%s: a rollout never drops below the replica count", where)

		pod := d.Spec.Template.Spec
		var zone bool
		for _, c := range pod.TopologySpreadConstraints {
			require.NotNil(t, c.LabelSelector, where)
			s, err := v1.LabelSelectorAsSelector(c.LabelSelector)
			require.NoError(t, err, where)
			require.True(t, s.Matches(labels.Set(d.Spec.Template.Labels)), "%s: the spread constraint selects its own pods", where)
			zone = zone || c.TopologyKey == "topology.kubernetes.io/zone" && c.WhenUnsatisfiable == corev1.DoNotSchedule
		}
		require.True(t, zone, "%s: replicas are spread across zones", where)
		require.NotNil(t, pod.SecurityContext, where)
		require.NotNil(t, pod.SecurityContext.RunAsNonRoot, where)
		require.True(t, *pod.SecurityContext.RunAsNonRoot, where)

		require.Len(t, pod.Containers, 1, where)
		c := pod.Containers[0]
		require.Len(t, c.Ports, 1, where)
		require.Equal(t, "http", c.Ports[0].Name, "%s: the port Prometheus scrapes is named http", where)
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
			require.NotNil(t, p, "%s: readiness and liveness probes", where)
			require.NotNil(t, p.HTTPGet, where)
			require.Equal(t, "http", p.HTTPGet.Port.String(), where)
		}
		require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path, where)
		require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path, "%s: liveness must not depend on Kafka, or a Kafka outage restarts every pod", where)
		require.False(t, c.Resources.Requests.Cpu().IsZero(), "%s: a CPU request", where)
		require.False(t, c.Resources.Requests.Memory().IsZero(), "%s: a memory request", where)
		require.False(t, c.Resources.Limits.Memory().IsZero(), "%s: a memory limit", where)

		// The listen address must match the declared port, and every
		// secret and config map the pod uses must be in the manifests.
		for _, e := range c.Env {
			if e.Name == "ASSENT_HTTP_ADDR" {
				require.Equal(t, "0.0.0.0:"+strconv.Itoa(int(c.Ports[0].ContainerPort)), e.Value, where)
			}
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				ref := e.ValueFrom.SecretKeyRef
				s, ok := m.secrets[ref.Name]
				require.True(t, ok, "%s: secret %s is not in infra/k8s", where, ref.Name)
				require.Contains(t, s.StringData, ref.Key, "%s: secret %s has no key %s", where, ref.Name, ref.Key)
			}
		}
		mounted := map[string]bool{}
		for _, vm := range c.VolumeMounts {
			mounted[vm.Name] = true
		}
		for _, v := range pod.Volumes {
			require.True(t, mounted[v.Name], "%s: volume %s is mounted", where, v.Name)
			switch {
			case v.Secret != nil:
				// Strimzi's User Operator writes a KafkaUser's password
				// into a secret of the user's name.
				if !m.hasUser(v.Secret.SecretName) {
					require.Contains(t, m.secrets, v.Secret.SecretName, where)
				}
			case v.ConfigMap != nil:
				require.Contains(t, m.configMaps, v.ConfigMap.Name, where)
			}
		}

		// A PodDisruptionBudget that covers exactly these pods and lets a
		// drain take one at a time.
		var pdbs []string
		for _, p := range m.pdbs {
			s, err := v1.LabelSelectorAsSelector(p.Spec.Selector)
			require.NoError(t, err)
			if p.Namespace == d.Namespace && s.Matches(labels.Set(d.Spec.Template.Labels)) {
				pdbs = append(pdbs, p.Name)
				require.NotNil(t, p.Spec.MaxUnavailable, "%s: PDB %s", where, p.Name)
				require.Equal(t, "1", p.Spec.MaxUnavailable.String(), where)
			}
		}
		require.Len(t, pdbs, 1, "%s: one PodDisruptionBudget", where)
	}

	for _, s := range m.services {
		var found bool
		for _, d := range m.deployments {
			if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				found = true
			}
		}
		require.True(t, found, "service %s selects a deployment's pods", s.Name)
	}
	require.Contains(t, m.secrets, "assent-slack", "the Slack credentials are a Secret")
	require.Contains(t, m.secrets["assent-slack"].StringData, "bot-token")
	require.Contains(t, m.secrets["assent-slack"].StringData, "signing-secret")
}

func TestManifestsKafkaMatchesTheDesign(t *testing.T) {
	t.Parallel()
	m := loadManifests(t)
	require.Len(t, m.kafkas, 1)
	k := m.kafkas[0]
	require.Equal(t, "enabled", k.Metadata.Annotations["strimzi.io/kraft"])
	require.Equal(t, "enabled", k.Metadata.Annotations["strimzi.io/node-pools"])
	cfg := k.Spec.Kafka.Config
	require.Equal(t, false, cfg["auto.create.topics.enable"], "topics come from provisioning only")
	for key, want := range map[string]float64{
		"default.replication.factor": 3, "min.insync.replicas": 2,
		"offsets.topic.replication.factor": 3, "transaction.state.log.replication.factor": 3, "transaction.state.log.min.isr": 2,
	} {
		require.Equal(t, want, cfg[key], key)
	}
	require.Equal(t, "topology.kubernetes.io/zone", k.Spec.Kafka.Rack.TopologyKey, "replicas spread over zones")

	// Dedicated controllers, as the fault suite's cluster runs them
	// (test/chaos): a lost broker is never the active controller too, so
	// it is fenced one broker session after its last heartbeat
	// (docs/architecture.md, "Failover").
	roles := map[string]int{}
	for _, p := range m.pools {
		require.Equal(t, k.Metadata.Name, p.Metadata.Labels["strimzi.io/cluster"])
		require.Len(t, p.Spec.Roles, 1, "pool %s: a node is a broker or a controller, not both", p.Metadata.Name)
		roles[p.Spec.Roles[0]] += p.Spec.Replicas
		require.NotEmpty(t, p.Spec.Storage.Volumes, p.Metadata.Name)
		for _, v := range p.Spec.Storage.Volumes {
			require.Equal(t, "persistent-claim", v.Type, "pool %s: logs and metadata are durable", p.Metadata.Name)
			require.False(t, v.DeleteClaim, "pool %s: deleting the cluster must not delete the audit trail", p.Metadata.Name)
		}
	}
	require.Equal(t, 3, roles["controller"], "three dedicated KRaft controllers: a quorum that survives losing one")
	require.GreaterOrEqual(t, roles["broker"], 3, "three brokers or more: RF 3, min ISR 2")

	byName := map[string]*strimziTopic{}
	for _, tp := range m.topics {
		byName[tp.Metadata.Name] = tp
		require.Equal(t, k.Metadata.Name, tp.Metadata.Labels["strimzi.io/cluster"])
		require.Equal(t, 3, tp.Spec.Replicas, tp.Metadata.Name)
		require.Equal(t, float64(2), tp.Spec.Config["min.insync.replicas"], tp.Metadata.Name)
		require.Equal(t, "delete", tp.Spec.Config["cleanup.policy"], tp.Metadata.Name)
	}
	require.Contains(t, byName, "assent.commands.v1")
	require.Contains(t, byName, "assent.events.v1")
	require.Equal(t, byName["assent.commands.v1"].Spec.Partitions, byName["assent.events.v1"].Spec.Partitions, "the two topics have the same partitions")
	require.Equal(t, float64(-1), byName["assent.events.v1"].Spec.Config["retention.ms"], "the audit trail is kept for ever")

	for _, d := range m.deployments {
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if e.Name == "ASSENT_PARTITIONS" {
				require.Equal(t, strconv.Itoa(byName["assent.events.v1"].Spec.Partitions), e.Value, "deployment %s", d.Name)
			}
			if e.Name == "ASSENT_KAFKA_BROKERS" {
				require.True(t, strings.HasPrefix(e.Value, k.Metadata.Name+"-kafka-bootstrap."), "deployment %s: Strimzi's bootstrap service", d.Name)
			}
		}
	}
}

// TestManifestsAuthenticateAndAuthorizeEveryService checks the Kafka
// cluster's authentication and authorization, that each service's
// KafkaUser holds exactly the ACLs of its role (logadmin.Grants on the
// production topics), and that each Deployment runs as its own user
// with that user's password mounted.
func TestManifestsAuthenticateAndAuthorizeEveryService(t *testing.T) {
	t.Parallel()
	m := loadManifests(t)
	require.Len(t, m.kafkas, 1)
	k := m.kafkas[0].Spec.Kafka
	for _, l := range k.Listeners {
		require.Equal(t, "scram-sha-512", l.Authentication.Type, "listener %s authenticates every client", l.Name)
	}
	require.Equal(t, "simple", k.Authorization.Type, "Kafka's StandardAuthorizer")
	require.Equal(t, []string{"assent-admin"}, k.Authorization.SuperUsers)
	require.Equal(t, false, k.Config["allow.everyone.if.no.acl.found"], "nothing is allowed without an ACL")

	users := map[string]*strimziUser{}
	for _, u := range m.users {
		require.Equal(t, "assent", u.Metadata.Namespace, u.Metadata.Name)
		require.Equal(t, m.kafkas[0].Metadata.Name, u.Metadata.Labels["strimzi.io/cluster"], u.Metadata.Name)
		require.Equal(t, "scram-sha-512", u.Spec.Authentication.Type, u.Metadata.Name)
		users[u.Metadata.Name] = u
	}
	require.Contains(t, users, "assent-admin")
	require.Nil(t, users["assent-admin"].Spec.Authorization, "the admin is a super user, with no ACLs of its own")

	strimziType := map[string]string{"topic": "topic", "group": "group", "transactional-id": "transactionalId", "cluster": "cluster"}
	for _, role := range logadmin.Roles() {
		name := "assent-" + string(role)
		u := users[name]
		require.NotNil(t, u, "a KafkaUser for the %s role", role)
		require.NotNil(t, u.Spec.Authorization, name)
		require.Equal(t, "simple", u.Spec.Authorization.Type, name)
		grants, err := logadmin.Grants(role, eventlog.DefaultTopicSpec())
		require.NoError(t, err)
		var want, got []string
		for _, g := range grants {
			pattern := "literal"
			if g.Prefixed {
				pattern = "prefix"
			}
			for _, op := range g.Ops {
				name := g.Name
				if g.Resource == "cluster" {
					name, pattern = "", ""
				}
				want = append(want, fmt.Sprintf("%s %s %s %s", strimziType[g.Resource], name, pattern, strings.ReplaceAll(op.String(), "_", "")))
			}
		}
		for _, a := range u.Spec.Authorization.ACLs {
			require.Equal(t, "*", a.Host, name)
			for _, op := range a.Operations {
				got = append(got, fmt.Sprintf("%s %s %s %s", a.Resource.Type, a.Resource.Name, a.Resource.PatternType, strings.ToUpper(op)))
			}
		}
		require.ElementsMatch(t, want, got, "%s holds exactly its role's ACLs (libs/logadmin/acl.go)", name)
	}
	require.Len(t, users, len(logadmin.Roles())+1, "no KafkaUser without a role")

	for _, d := range m.deployments {
		c := d.Spec.Template.Spec.Containers[0]
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		user := env["ASSENT_KAFKA_USER"]
		require.Equal(t, "assent-"+d.Name, user, "deployment %s runs as its own Kafka user", d.Name)
		require.Contains(t, users, user, d.Name)
		file := env["ASSENT_KAFKA_PASSWORD_FILE"]
		var mounted bool
		for _, vm := range c.VolumeMounts {
			if strings.HasPrefix(file, vm.MountPath+"/") {
				for _, v := range d.Spec.Template.Spec.Volumes {
					if v.Name == vm.Name && v.Secret != nil && v.Secret.SecretName == user {
						mounted = true
					}
				}
			}
		}
		require.True(t, mounted, "deployment %s mounts the Secret %s (Strimzi's) at %s", d.Name, user, file)
	}
}

// TestStrictDecodingRefusesUnknownFields proves the strict decoding above
// can fail: a misplaced field in a Deployment is refused.
func TestStrictDecodingRefusesUnknownFields(t *testing.T) {
	t.Parallel()
	doc := []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers: [{name: x, image: x, readinesProbe: {}}]\n")
	err := yaml.UnmarshalStrict(doc, &appsv1.Deployment{})
	require.ErrorContains(t, err, `unknown field "readinesProbe"`)
}

// TestManifestsSignEveryCommand: every service that produces commands
// takes its command key from a mounted Secret of its own, and the decider
// the published service keys from a ConfigMap that parses
// (docs/architecture.md, "Authenticated commands").
func TestManifestsSignEveryCommand(t *testing.T) {
	t.Parallel()
	m := loadManifests(t)
	envOf := func(c corev1.Container, name string) *corev1.EnvVar {
		for i := range c.Env {
			if c.Env[i].Name == name {
				return &c.Env[i]
			}
		}
		return nil
	}
	mountOf := func(pod corev1.PodSpec, c corev1.Container, file string) *corev1.Volume {
		for _, vm := range c.VolumeMounts {
			if strings.HasPrefix(file, vm.MountPath+"/") {
				for i := range pod.Volumes {
					if pod.Volumes[i].Name == vm.Name {
						return &pod.Volumes[i]
					}
				}
			}
		}
		return nil
	}
	producers := map[string]bool{"api": true, "slack-gateway": true, "notifier": true, "console": true}
	seen := 0
	for _, d := range m.deployments {
		pod := d.Spec.Template.Spec
		c := pod.Containers[0]
		file, id := envOf(c, "ASSENT_COMMAND_KEY_FILE"), envOf(c, "ASSENT_COMMAND_KEY_ID")
		if !producers[d.Name] {
			require.Nil(t, file, "%s produces no commands", d.Name)
			continue
		}
		seen++
		require.NotNil(t, file, "%s: ASSENT_COMMAND_KEY_FILE", d.Name)
		require.NotNil(t, id, "%s: ASSENT_COMMAND_KEY_ID", d.Name)
		secret := "assent-" + d.Name + "-command-key"
		require.NotNil(t, id.ValueFrom, d.Name)
		require.Equal(t, secret, id.ValueFrom.SecretKeyRef.Name, "%s: the key id comes from its own Secret", d.Name)
		v := mountOf(pod, c, file.Value)
		require.NotNil(t, v, "%s: %s is on a mounted volume", d.Name, file.Value)
		require.NotNil(t, v.Secret, "%s: the private key is a Secret", d.Name)
		require.Equal(t, secret, v.Secret.SecretName, d.Name)
		require.Contains(t, m.secrets[secret].StringData, filepath.Base(file.Value), d.Name)
	}
	require.Equal(t, len(producers), seen)

	for _, d := range m.deployments {
		if d.Name != "decider" {
			continue
		}
		c := d.Spec.Template.Spec.Containers[0]
		file := envOf(c, "ASSENT_SERVICE_KEYS_FILE")
		require.NotNil(t, file, "the decider verifies commands with the published service keys")
		v := mountOf(d.Spec.Template.Spec, c, file.Value)
		require.NotNil(t, v, "%s is on a mounted volume", file.Value)
		require.NotNil(t, v.ConfigMap, "the service keys are public: a ConfigMap")
		cm := m.configMaps[v.ConfigMap.Name]
		require.NotNil(t, cm)
		_, err := wire.ParseServiceKeyRing([]byte(cm.Data[filepath.Base(file.Value)]))
		require.NoError(t, err, "the published service keys parse")
	}
}

// TestManifestsKeyFilesParse: the published keys the manifests mount are
// read by the same loaders the services use, so a format the code does
// not know fails here instead of at a pod's start. It failed while
// 20-config.yaml named its decider keys "assent-decider-signing-keys-v1".
func TestManifestsKeyFilesParse(t *testing.T) {
	m := loadManifests(t)
	parsers := map[string]func([]byte) error{
		"decider-keys.json": func(b []byte) error { _, err := wire.ParseKeyRing(b); return err },
		"service-keys.json": func(b []byte) error { _, err := wire.ParseServiceKeyRing(b); return err },
	}
	found := 0
	for name, cm := range m.configMaps {
		for key, data := range cm.Data {
			if parse, ok := parsers[key]; ok {
				found++
				require.NoError(t, parse([]byte(data)), "config map %s, %s", name, key)
			}
		}
	}
	require.Equal(t, len(parsers), found, "each keys file is in a config map")
}

// Strimzi's list of broker settings that spec.kafka.config may not set
// (it drops them with a warning), and the exceptions to it, as of Strimzi
// 0.48 (KafkaClusterSpec.FORBIDDEN_PREFIXES and
// FORBIDDEN_PREFIX_EXCEPTIONS; 0.48 made broker.session.timeout.ms and
// broker.heartbeat.interval.ms exceptions).
var (
	strimziForbiddenPrefixes = []string{"listeners", "advertised.", "broker.", "listener.", "host.name", "port",
		"inter.broker.listener.name", "sasl.", "ssl.", "security.", "password.", "log.dir", "zookeeper.connect",
		"zookeeper.set.acl", "zookeeper.ssl", "zookeeper.clientCnxnSocket", "authorizer.", "super.user",
		"cruise.control.metrics.topic", "cruise.control.metrics.reporter.bootstrap.servers", "node.id",
		"process.roles", "controller.", "metadata.log.dir"}
	strimziForbiddenExceptions = []string{"zookeeper.connection.timeout.ms", "sasl.server.max.receive.size",
		"ssl.cipher.suites", "ssl.protocol", "ssl.enabled.protocols", "ssl.secure.random.implementation",
		"cruise.control.metrics.topic.num.partitions", "cruise.control.metrics.topic.replication.factor",
		"cruise.control.metrics.topic.retention.ms", "cruise.control.metrics.topic.auto.create.retries",
		"cruise.control.metrics.topic.auto.create.timeout.ms", "cruise.control.metrics.topic.min.insync.replicas",
		"broker.session.timeout.ms", "broker.heartbeat.interval.ms", "controller.socket.timeout.ms",
		"controller.quorum.election.backoff.max.ms", "controller.quorum.election.timeout.ms", "controller.quorum.fetch.timeout.ms"}
)

// TestManifestsKafkaFailsOverAsTheLocalCluster: the broker settings that
// decide how fast a lost broker is fenced and a group moves
// (docs/architecture.md, "Failover") are the same in production as in the
// cluster the fault suite and the failover benchmark measure
// (infra/kafka/node.properties.tmpl, from its "Failover" section on, which
// takes in the "Latency" section after it), and
// Strimzi passes every one of them on: a setting it forbids would be
// dropped with only a warning in the operator's log. The deciders' session
// is one the brokers accept.
func TestManifestsKafkaFailsOverAsTheLocalCluster(t *testing.T) {
	t.Parallel()
	m := loadManifests(t)
	require.Len(t, m.kafkas, 1)
	cfg := m.kafkas[0].Spec.Kafka.Config

	tmpl, err := os.ReadFile(filepath.Join(repoRoot(), "infra", "kafka", "node.properties.tmpl"))
	require.NoError(t, err)
	_, failover, found := strings.Cut(string(tmpl), "# --- Failover")
	require.True(t, found, "node.properties.tmpl has a Failover section")
	_, failover, _ = strings.Cut(failover, "\n") // the rest of the heading
	local := map[string]string{}
	for _, line := range strings.Split(failover, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "a setting: %q", line)
		local[k] = v
	}
	require.NotEmpty(t, local)
	for k, v := range local {
		require.Contains(t, cfg, k, "infra/k8s/10-kafka.yaml sets %s as the local cluster does", k)
		require.Equal(t, v, fmt.Sprint(cfg[k]), "%s in infra/k8s/10-kafka.yaml and infra/kafka/node.properties.tmpl", k)
	}

	for k := range cfg {
		if slices.Contains(strimziForbiddenExceptions, k) {
			continue
		}
		for _, prefix := range strimziForbiddenPrefixes {
			require.False(t, strings.HasPrefix(k, prefix), "Strimzi ignores %s in spec.kafka.config (forbidden prefix %q)", k, prefix)
		}
	}

	min, err := strconv.Atoi(fmt.Sprint(cfg["group.min.session.timeout.ms"]))
	require.NoError(t, err, "group.min.session.timeout.ms")
	var session string
	for _, d := range m.deployments {
		if d.Name != "decider" {
			continue
		}
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if e.Name == "ASSENT_SESSION_TIMEOUT" {
				session = e.Value
			}
		}
	}
	require.NotEmpty(t, session, "the decider Deployment sets ASSENT_SESSION_TIMEOUT")
	s, err := time.ParseDuration(session)
	require.NoError(t, err)
	require.GreaterOrEqual(t, s, time.Duration(min)*time.Millisecond, "the brokers accept the deciders' session (group.min.session.timeout.ms)")
	require.LessOrEqual(t, s, 3*time.Second, "a decider killed -9 hands its partitions over within the failover goal (3s)")
}
