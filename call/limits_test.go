package call_test

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// echoFrame is a call.requested frame of test/echo whose input is msg.
func echoFrame(t *testing.T, id, msg string) []byte {
	t.Helper()
	p, _ := json.Marshal(call.RequestPayload{OperationID: "test/echo", Input: json.RawMessage(`{"msg":` + mustJSON(t, msg) + `}`)})
	body, _ := json.Marshal(call.Envelope{Type: call.TypeRequested, ID: id, Payload: p})
	return call.AppendFrame(nil, body)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAnonymousFrameLimit: an anonymous caller may not send frames larger
// than a request with a token needs; a known caller may.
func TestAnonymousFrameLimit(t *testing.T) {
	key := coretest.NewKey(t)
	n := startNode(t, []core.PeerEntry{{ID: "laptop", NodeIDs: []core.NodeID{coretest.NodeID(key)}}}, nil, nil)
	big := strings.Repeat("x", call.DefaultMaxAnonFrameBytes)
	for _, tc := range []struct {
		name   string
		key    []byte
		msg    string
		answer bool
	}{
		{"anonymous, small", nil, "hi", true},
		{"anonymous, above the anonymous limit", nil, big, false},
		{"known, same frame", key, big, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := n.Dial(t, core.NetworkQUIC, tc.key, call.ALPN)
			envs, _ := rawAnswer(t, conn, echoFrame(t, "r", tc.msg))
			got := len(envs) == 1 && envs[0].Type == call.TypeResponded
			if got != tc.answer {
				t.Fatalf("answered %v (%d envelopes), want %v", got, len(envs), tc.answer)
			}
		})
	}
}

// TestFrameBudgetRefusesStream: frames that would take a connection past its
// in-flight budget are refused stream by stream, and the connection goes
// on serving.
func TestFrameBudgetRefusesStream(t *testing.T) {
	reg := call.NewRegistry()
	testOps(t, reg, nil)
	h, err := call.New(call.Config{Registry: reg, MaxAnonFrameBytes: call.DefaultMaxFrameBytes})
	if err != nil {
		t.Fatal(err)
	}
	nd := coretest.Start(t, core.Config{Limits: core.Limits{MaxAnonConnInflightBytes: 64 << 10}}, h)
	conn := nd.Dial(t, core.NetworkQUIC, nil, call.ALPN)
	// Half-sent frames declaring 1 MiB hold what arrived; the next one's
	// growth is refused.
	var held []core.Stream
	for range 4 {
		s, err := conn.OpenStream(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, s)
		frame := echoFrame(t, "big", strings.Repeat("y", 1<<20))
		s.Write(frame[:40<<10])
	}
	refused := 0
	for _, s := range held {
		s.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := s.Read(make([]byte, 1)); err != nil && !isDeadline(err) {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no stream refused past a 64 KiB budget with 160 KiB in flight")
	}
	envs, err := rawAnswer(t, conn, echoFrame(t, "ok", "small"))
	if err == nil && len(envs) == 0 {
		t.Log("small call refused while the budget is full (allowed)")
	}
	for _, s := range held {
		s.Abort(core.CodeNoError)
	}
	// With the budget free again, calls go through.
	deadline := time.Now().Add(5 * time.Second)
	for {
		envs, err := rawAnswer(t, conn, echoFrame(t, "ok", "small"))
		if err == nil && len(envs) == 1 && envs[0].Type == call.TypeResponded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls still refused after the held frames ended: %+v %v", envs, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func isDeadline(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// TestQuietCallOutlivesAppIdle: a call in flight on a TCP+TLS connection
// that moves no bytes is work, not idleness; the connection is reaped once
// nothing is in flight.
func TestQuietCallOutlivesAppIdle(t *testing.T) {
	reg := call.NewRegistry()
	testOps(t, reg, nil)
	h, err := call.New(call.Config{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	nd := coretest.Start(t, core.Config{Limits: core.Limits{AppIdleTimeout: time.Second}}, h)
	c, err := call.Dial(ctx(t), nd.Addr, call.Options{Dialer: &core.Dialer{Network: core.NetworkTCP}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out string
	if err := c.Call(ctx(t), "test/slow", map[string]string{"sleep": "2500ms"}, &out); err != nil || out != "slept 2500ms" {
		t.Fatalf("quiet 2.5s call on a 1s idle timeout: %q %v", out, err)
	}
	var echoed map[string]any
	if err := c.Call(ctx(t), "test/echo", map[string]string{"msg": "x"}, &echoed); err != nil {
		t.Fatalf("call after the quiet one: %v", err)
	}
	// Nothing in flight now: the node closes the connection.
	time.Sleep(2500 * time.Millisecond)
	if err := c.Call(ctx(t), "test/echo", map[string]string{"msg": "x"}, &echoed); err == nil {
		t.Fatal("connection idle for 2.5s on a 1s timeout still served")
	}
}
