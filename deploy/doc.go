// Package deploy holds the checks of the deployment recipes beside it: the
// systemd unit (systemd/), the Kubernetes manifests (kubernetes/), the
// Grafana dashboard (grafana/) and the Prometheus rules (prometheus/). It is
// a Go module of its own so that the Kubernetes API types and the Redis
// storage module it decodes and runs never weigh on the module's go.mod.
// Its tests are the whole of it; see README.md, "Deploy", for what each one
// proves.
package deploy
