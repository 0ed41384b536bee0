package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestCallGoalLines: the call scenario ends with one goal line per goal of
// issue 18's call rows.
func TestCallGoalLines(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every call system")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := calls(ctx, &out, 1, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	checkGoalLines(t, out.String(), "call-p50-quic-vs-grpc", "call-p50-tcp-vs-grpc", "call-rate-quic-vs-grpc", "call-rate-tcp-vs-grpc", "call-routed-p50-vs-direct")
}

// checkGoalLines checks that out ends with one goal line (issue 18's bench
// interface, profile loopback) per name, in order.
func checkGoalLines(t *testing.T, out string, goals ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < len(goals) {
		t.Fatalf("%d lines", len(lines))
	}
	tail := lines[len(lines)-len(goals):]
	for i, g := range goals {
		if want := "goal " + g + " loopback ratio "; !strings.HasPrefix(tail[i], want) ||
			!(strings.HasSuffix(tail[i], " met") || strings.HasSuffix(tail[i], " missed")) {
			t.Errorf("goal line %d is %q, want %q...", i, tail[i], want)
		}
	}
}
