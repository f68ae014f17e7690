// Package deploy holds no code: its test checks the production-shaped deployment description
// (Dockerfile, docker-compose.yml and the files under deploy/) against the Go code. Nothing on a
// development machine runs that stack, so the test is what keeps it correct: every environment
// variable a service sets is one its binary reads, connections point at the compose services,
// dependencies wait on real health checks, Prometheus scrapes every /metrics endpoint, and the
// image builds every command under cmd/.
package deploy
