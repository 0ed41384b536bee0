package main

import (
	"bytes"
	"context"
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
	checkGoalLines(t, out.String(), "dns-udp-vs-coredns", "dns-doq-vs-dot")
}
