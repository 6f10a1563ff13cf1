// Package infra holds the checks of the deployment artefacts in this
// folder: the Prometheus rules, the Grafana dashboard and the Kubernetes
// manifests. The artefacts themselves are plain files.
package infra
