package http

import (
	"strings"
	"testing"
)

func TestMetricsAndHealth(t *testing.T) {
	f := start(t, Limits{})
	c := f.client(t, true)
	do(t, c, "POST", f.url("/v1/ops/demo/echo"), "", `{"text":"m"}`)
	do(t, c, "POST", f.url("/v1/ops/demo/boom"), "", `{}`)
	st, _, body := do(t, c, "GET", f.url("/metrics"), f.admin, "")
	if st != 200 {
		t.Fatalf("metrics: %d", st)
	}
	for _, want := range []string{
		`alknet_call_calls_total{op="demo/echo"} 1`,
		`alknet_call_errors_total{op="demo/boom"} 1`,
		`alknet_call_duration_seconds_bucket{op="demo/echo"`,
		`alknet_http_connections_total{alpn="h2"}`,
		`alknet_http_received_bytes_total{alpn="h2"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if st, _, body := do(t, c, "GET", f.url("/readyz"), "", ""); st != 200 || body != "ok\n" {
		t.Fatalf("readyz: %d %q", st, body)
	}
}

func TestMountAndReserved(t *testing.T) {
	reg := testRegistry(t, nil)
	s, err := New(Config{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range []string{"/v1/x/", "/mcp", "/", "no-slash", "/metrics"} {
		if err := s.Mount(p, s.Handler()); err == nil {
			t.Errorf("Mount(%q) succeeded", p)
		}
	}
	if err := s.Mount("/dns-query", s.Handler()); err != nil {
		t.Fatal(err)
	}
	if err := s.Mount("/dns-query", s.Handler()); err == nil {
		t.Error("mounting the same path twice succeeded")
	}
}
