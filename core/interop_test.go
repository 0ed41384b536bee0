package core_test

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// TestOpenSSLClientALPN drives the stock openssl s_client over TCP+TLS.
func TestOpenSSLClientALPN(t *testing.T) {
	openssl := coretest.RequireTool(t, "openssl")
	n := coretest.Start(t, core.Config{}, echo{[]string{"test/a", "h2"}})
	for _, tc := range []struct {
		alpn   string
		served bool
	}{
		{"test/a", true},
		{"h2", true},
		{"test/unserved", false},
	} {
		t.Run(tc.alpn, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", n.HostPort, "-alpn", tc.alpn, "-tls1_3")
			cmd.Stdin = strings.NewReader("")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			text := out.String()
			if tc.served {
				if !strings.Contains(text, "ALPN protocol: "+tc.alpn) {
					t.Fatalf("openssl did not negotiate %q (err %v):\n%s", tc.alpn, err, text)
				}
				if !strings.Contains(text, "TLSv1.3") {
					t.Errorf("not TLS 1.3:\n%s", text)
				}
				return
			}
			if err == nil && strings.Contains(text, "ALPN protocol:") {
				t.Fatalf("openssl negotiated an unserved ALPN:\n%s", text)
			}
			if !strings.Contains(text, "no application protocol") && !strings.Contains(text, "alert") {
				t.Errorf("handshake with unserved ALPN did not fail with an alert:\n%s", text)
			}
		})
	}
}
