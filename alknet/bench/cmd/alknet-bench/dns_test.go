package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestDNSGoalLines: the dns scenario ends with one goal line per goal (UDP
// against CoreDNS, and issue 18's DoQ against DoT).
func TestDNSGoalLines(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every DNS server and transport")
	}
	defer func(d time.Duration) { *dnsDuration = d }(*dnsDuration)
	*dnsDuration = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := dnsScenario(ctx, &out, 1); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	goals := []string{"dns-udp-vs-coredns", "dns-doq-vs-dot"}
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
