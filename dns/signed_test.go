package dns

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// fixedKey is the key of the known-answer tests: seed 0x01 × 32.
var fixedKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))

// fixedTime is the known-answer timestamp: 1 700 000 000 s.
var fixedTime = time.UnixMicro(1_700_000_000_000_000)

func mustRR(t testing.TB, s string) mdns.RR {
	t.Helper()
	rr, err := mdns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func TestSignableIsBencoded(t *testing.T) {
	got := string(signable(1700000000000000, []byte("abc")))
	if want := "3:seqi1700000000000000e1:v3:abc"; got != want {
		t.Errorf("signable = %q, want %q", got, want)
	}
}

func TestSignedPacketKnownKey(t *testing.T) {
	p, err := Sign(fixedKey, fixedTime, []mdns.RR{mustRR(t, "_foo. 300 IN TXT bar")})
	if err != nil {
		t.Fatal(err)
	}
	id := coretest.NodeID(fixedKey)
	b := p.Bytes()
	if !bytes.Equal(b[:32], fixedKey.Public().(ed25519.PublicKey)) {
		t.Error("encoding does not start with the public key")
	}
	if ts := binary.BigEndian.Uint64(b[96:104]); ts != 1_700_000_000_000_000 {
		t.Errorf("timestamp field %d", ts)
	}
	// The signature is deterministic (Ed25519) and covers the bencoded form.
	if !ed25519.Verify(fixedKey.Public().(ed25519.PublicKey), signable(p.ts, b[104:]), b[32:96]) {
		t.Error("signature does not verify over the bencoded seq and v")
	}
	back, err := DecodeSignedPacket(b)
	if err != nil {
		t.Fatal(err)
	}
	recs := back.Records()
	if len(recs) != 1 || recs[0].Header().Name != "_foo."+id.String()+"." || back.Timestamp() != p.Timestamp() {
		t.Errorf("decoded %v at %d", recs, back.Timestamp())
	}
	if !bytes.Equal(back.Bytes(), b) {
		t.Error("re-encoding differs")
	}
}

func TestDecodeSignedPacketErrors(t *testing.T) {
	p, err := Sign(fixedKey, fixedTime, []mdns.RR{mustRR(t, "_foo. 300 IN TXT bar")})
	if err != nil {
		t.Fatal(err)
	}
	good := p.Bytes()
	tamper := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 1; return b }
	big := append(bytes.Clone(good), make([]byte, MaxPacketBytes)...)
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"short", good[:50], ErrBadPacket},
		{"signature bit flipped", tamper(40), ErrBadSignature},
		{"timestamp changed", tamper(103), ErrBadSignature},
		{"packet changed", tamper(len(good) - 1), ErrBadSignature},
		{"too large", big, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeSignedPacket(tc.b); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("signed garbage is a bad packet", func(t *testing.T) {
		garbage := []byte{1, 2, 3}
		b := append(fixedKey.Public().(ed25519.PublicKey), ed25519.Sign(fixedKey, signable(5, garbage))...)
		b = binary.BigEndian.AppendUint64(b, 5)
		if _, err := DecodeSignedPacket(append(b, garbage...)); !errors.Is(err, ErrBadPacket) {
			t.Errorf("got %v, want ErrBadPacket", err)
		}
	})
	t.Run("oversized packet refused at signing", func(t *testing.T) {
		var rrs []mdns.RR
		for i := range 10 {
			rrs = append(rrs, mustRR(t, "_x"+string(rune('a'+i))+". TXT "+strings.Repeat("y", 200)))
		}
		if _, err := Sign(fixedKey, fixedTime, rrs); !errors.Is(err, ErrTooLarge) {
			t.Errorf("got %v, want ErrTooLarge", err)
		}
	})
}

// relayEnv is a server with a durable store and its relay on httptest.
type relayEnv struct {
	s    *Server
	hs   *httptest.Server
	dir  string
	now  *atomic.Int64 // unix µs
	base string
}

func newRelayEnv(t *testing.T, edit func(*Config)) *relayEnv {
	t.Helper()
	e := &relayEnv{dir: t.TempDir(), now: &atomic.Int64{}}
	e.now.Store(fixedTime.Add(time.Minute).UnixMicro())
	e.s = e.open(t, edit)
	mux := http.NewServeMux()
	mux.Handle("/pkarr/", e.s.RelayHandler())
	e.hs = httptest.NewServer(mux)
	t.Cleanup(e.hs.Close)
	e.base = e.hs.URL + "/pkarr"
	return e
}

func (e *relayEnv) clock() time.Time { return time.UnixMicro(e.now.Load()) }

// open builds a server on the env's store directory (again, for restarts).
func (e *relayEnv) open(t *testing.T, edit func(*Config)) *Server {
	t.Helper()
	st, err := OpenStore(StoreConfig{Dir: e.dir, Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	return testServer(t, func(c *Config) {
		c.Store, c.Clock = st, e.clock
		if edit != nil {
			edit(c)
		}
	})
}

func (e *relayEnv) put(t *testing.T, key string, body []byte, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, e.base+"/"+key, bytes.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

func selfInfo() NodeInfo {
	return NodeInfo{
		ALPNs:   []string{"alknet/call", "doq"},
		Port:    4433,
		Addrs:   []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")},
		Version: "test",
		TTL:     120,
	}
}

func TestRelay(t *testing.T) {
	e := newRelayEnv(t, nil)
	id := coretest.NodeID(fixedKey).String()
	p1, err := SignSelf(fixedKey, selfInfo(), fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	older, _ := SignSelf(fixedKey, selfInfo(), fixedTime.Add(-time.Second))
	bad := p1.RelayPayload()
	bad[10] ^= 1
	other := coretest.NewKey(t)

	steps := []struct {
		name   string
		key    string
		body   []byte
		hdr    []string
		status int
	}{
		{"bad key", "not-a-key", p1.RelayPayload(), nil, 400},
		{"tampered signature", id, bad, nil, 400},
		{"signed by another key", coretest.NodeID(other).String(), p1.RelayPayload(), nil, 400},
		{"too large", id, make([]byte, MaxRelayPayloadBytes+1), nil, 413},
		{"If-Match on nothing", id, p1.RelayPayload(), []string{"If-Match", `"1"`}, 412},
		{"first publish", id, p1.RelayPayload(), nil, 204},
		{"same packet again", id, p1.RelayPayload(), nil, 204},
		{"older timestamp", id, older.RelayPayload(), nil, 409},
	}
	for _, st := range steps {
		if resp := e.put(t, st.key, st.body, st.hdr...); resp.StatusCode != st.status {
			t.Errorf("%s: status %d, want %d", st.name, resp.StatusCode, st.status)
		}
	}
	if got, _ := e.s.Store().Get(coretest.NodeID(fixedKey)); got == nil || got.Timestamp() != p1.Timestamp() {
		t.Fatalf("store holds %v, want the first packet", got)
	}

	// GET: body, headers, conditional.
	resp, err := http.Get(e.base + "/" + id)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, p1.RelayPayload()) {
		t.Fatalf("GET: %d, %d bytes", resp.StatusCode, len(body))
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=120") {
		t.Errorf("Cache-Control %q, want max-age=120", cc)
	}
	if resp.Header.Get("Content-Type") != relayContentType || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("headers %v", resp.Header)
	}
	req, _ := http.NewRequest(http.MethodGet, e.base+"/"+id, nil)
	req.Header.Set("If-Modified-Since", resp.Header.Get("Last-Modified"))
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp2.Body.Close()
	if resp2.StatusCode != http.StatusNotModified {
		t.Errorf("If-Modified-Since: %d, want 304", resp2.StatusCode)
	}

	// CAS: the ETag names the stored packet.
	p2, _ := SignSelf(fixedKey, selfInfo(), fixedTime.Add(time.Second))
	if r := e.put(t, id, p2.RelayPayload(), "If-Match", `"123"`); r.StatusCode != 412 {
		t.Errorf("stale If-Match: %d, want 412", r.StatusCode)
	}
	if r := e.put(t, id, p2.RelayPayload(), "If-Match", resp.Header.Get("ETag")); r.StatusCode != 204 {
		t.Errorf("matching If-Match: %d, want 204", r.StatusCode)
	}

	// Served over DNS under the signed origin, with the packet's TTL.
	ans := e.s.Answer(query("_alknet."+strings.ToUpper(id)+".alk.test.", mdns.TypeSVCB), 0)
	if len(ans.Answer) != 1 || ans.Answer[0].Header().Ttl != 120 || !ans.Authoritative {
		t.Fatalf("DNS answer %v", ans)
	}
	if ans := e.s.Answer(query("_alknet."+id+".alk.test.", mdns.TypeA), 0); ans.Rcode != mdns.RcodeSuccess || len(ans.Ns) != 1 {
		t.Errorf("NODATA expected: %v", ans)
	}
	if ans := e.s.Answer(query("_other."+id+".alk.test.", mdns.TypeA), 0); ans.Rcode != mdns.RcodeNameError {
		t.Errorf("NXDOMAIN expected: %v", ans)
	}

	// A restart keeps the latest packet.
	again := e.open(t, nil)
	if got, ok := again.Store().Get(coretest.NodeID(fixedKey)); !ok || got.Timestamp() != p2.Timestamp() {
		t.Errorf("after restart: %v", got)
	}
	// Stale packets expire.
	e.now.Store(fixedTime.Add(DefaultSignedMaxAge + time.Hour).UnixMicro())
	if ans := e.s.Answer(query("_alknet."+id+".alk.test.", mdns.TypeSVCB), 0); ans.Rcode != mdns.RcodeNameError {
		t.Errorf("stale packet served: %v", ans)
	}
	if _, err := os.Stat(e.dir + "/" + id + storeExt); !os.IsNotExist(err) {
		t.Errorf("stale file kept: %v", err)
	}
}

func TestRelayPolicy(t *testing.T) {
	t.Run("If-Match required", func(t *testing.T) {
		e := newRelayEnv(t, func(c *Config) { c.RequireIfMatch = true })
		p, _ := SignSelf(fixedKey, selfInfo(), fixedTime)
		id := p.Key().String()
		if r := e.put(t, id, p.RelayPayload()); r.StatusCode != 428 {
			t.Errorf("no condition: %d, want 428", r.StatusCode)
		}
		if r := e.put(t, id, p.RelayPayload(), "If-None-Match", "*"); r.StatusCode != 204 {
			t.Errorf("If-None-Match *: %d, want 204", r.StatusCode)
		}
	})
	t.Run("store full", func(t *testing.T) {
		e := newRelayEnv(t, func(c *Config) { c.RelayMaxPackets = 2 })
		keys := []ed25519.PrivateKey{coretest.NewKey(t), coretest.NewKey(t), coretest.NewKey(t), coretest.NewKey(t)}
		at := fixedTime
		put := func(k ed25519.PrivateKey) int {
			at = at.Add(time.Second)
			p, err := SignSelf(k, selfInfo(), at)
			if err != nil {
				t.Fatal(err)
			}
			return e.put(t, p.Key().String(), p.RelayPayload()).StatusCode
		}
		steps := []struct {
			name   string
			key    ed25519.PrivateKey
			status int
		}{
			{"first key", keys[0], 204},
			{"second key", keys[1], 204},
			{"third key, store full", keys[2], 507},
			{"update of a held key", keys[0], 204},
		}
		for _, st := range steps {
			if got := put(st.key); got != st.status {
				t.Errorf("%s: status %d, want %d", st.name, got, st.status)
			}
		}
		if n := e.s.Store().Len(); n != 2 {
			t.Errorf("store holds %d packets, want 2", n)
		}
		// The node's own publishes and alknet/dns ones are not refused.
		own, _ := SignSelf(keys[3], selfInfo(), at)
		if err := e.s.Store().Put(own, Precondition{}); err != nil {
			t.Errorf("Store.Put past the relay budget: %v", err)
		}
		// Once the held packets are stale they make room.
		e.now.Store(at.Add(DefaultSignedMaxAge + time.Hour).UnixMicro())
		at = e.clock()
		if got := put(keys[2]); got != 204 {
			t.Errorf("after the others went stale: status %d, want 204", got)
		}
		if n := e.s.Store().Len(); n != 1 {
			t.Errorf("store holds %d packets, want 1 (stale ones dropped)", n)
		}
	})
	t.Run("rate limited", func(t *testing.T) {
		e := newRelayEnv(t, func(c *Config) { c.PublishRate = 2 })
		var last int
		for i := range 3 {
			p, _ := SignSelf(fixedKey, selfInfo(), fixedTime.Add(time.Duration(i)*time.Second))
			last = e.put(t, p.Key().String(), p.RelayPayload()).StatusCode
		}
		if last != 429 {
			t.Errorf("third publish in a minute: %d, want 429", last)
		}
	})
}

func TestPublishOverALPN(t *testing.T) {
	e := newRelayEnv(t, nil)
	n := startNode(t, e.s)
	publisherKey := coretest.NewKey(t)
	d, err := core.NewDirectory([]core.PeerEntry{{ID: "pub", NodeIDs: []core.NodeID{coretest.NodeID(publisherKey)}, Scopes: []string{ScopePublish}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.Identities.Store(d)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, _ := SignSelf(fixedKey, selfInfo(), fixedTime)
	id := p.Key()

	var se *StatusError
	if err := Publish(ctx, nil, n.Addr, p); !errors.As(err, &se) || se.Status != 401 && se.Status != 403 {
		t.Errorf("anonymous publish: %v, want 403", err)
	}
	if _, err := Fetch(ctx, nil, n.Addr, id); !errors.As(err, &se) || se.Status != 404 {
		t.Errorf("fetch before publish: %v, want 404", err)
	}
	pd := &core.Dialer{Key: publisherKey}
	if err := Publish(ctx, pd, n.Addr, p); err != nil {
		t.Fatalf("publish: %v", err)
	}
	older, _ := SignSelf(fixedKey, selfInfo(), fixedTime.Add(-time.Second))
	if err := Publish(ctx, pd, n.Addr, older); !errors.As(err, &se) || se.Status != 409 {
		t.Errorf("older publish: %v, want 409", err)
	}
	rec, err := Resolve(ctx, id, n.Addr, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := selfInfo(); !rec.NodeInfo.Equal(want) || rec.NodeID != id {
		t.Errorf("resolved %+v, want %+v", rec, want)
	}
	rec, err = Resolve(ctx, id, e.base, nil, nil)
	if err != nil || !rec.NodeInfo.Equal(selfInfo()) {
		t.Errorf("resolve via relay: %+v, %v", rec, err)
	}
}

func TestPublisher(t *testing.T) {
	home := newRelayEnv(t, nil)
	n := startNode(t, home.s)
	key := coretest.NewKey(t)
	d, _ := core.NewDirectory([]core.PeerEntry{{ID: "node", NodeIDs: []core.NodeID{coretest.NodeID(key)}, Scopes: []string{ScopePublish}}}, nil)
	n.Identities.Store(d)
	local, _ := OpenStore(StoreConfig{})
	var info atomic.Pointer[NodeInfo]
	i := selfInfo()
	info.Store(&i)
	pub, err := NewPublisher(PublisherConfig{Key: key, Info: func() NodeInfo { return *info.Load() }, Local: local,
		Homes: []string{n.Addr}, Dialer: &core.Dialer{Key: key}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pub.Run(ctx) }()
	defer func() { cancel(); <-done }()
	id := coretest.NodeID(key)
	coretest.Eventually(t, 10*time.Second, "the first publish", func() bool { _, ok := home.s.Store().Get(id); return ok })
	i2 := i
	i2.ALPNs = []string{"alknet/dns"}
	info.Store(&i2)
	pub.Refresh()
	coretest.Eventually(t, 10*time.Second, "the republish", func() bool {
		p, ok := home.s.Store().Get(id)
		if !ok {
			return false
		}
		rec, err := ReadSelf(p)
		return err == nil && rec.NodeInfo.Equal(i2)
	})
	if p, ok := local.Get(id); !ok || p == nil {
		t.Error("not published to the local store")
	}
}

// TestSelfVia checks that the heads a node publishes come back from its
// signed self-description, that an entry pinning no NodeID is refused
// when signing, and that a record without one reads as none.
func TestSelfVia(t *testing.T) {
	head := coretest.NodeID(coretest.NewKey(t)).String() + "@198.51.100.7:4433"
	info := selfInfo()
	info.Via = []string{head}
	p, err := SignSelf(fixedKey, info, fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := ReadSelf(p)
	if err != nil {
		t.Fatal(err)
	}
	if !rec.NodeInfo.Equal(info) || rec.Version != "test" {
		t.Errorf("read %+v, want %+v", rec.NodeInfo, info)
	}
	info.Via = []string{"198.51.100.7:4433"}
	if _, err := SignSelf(fixedKey, info, fixedTime); err == nil {
		t.Error("signed a via that pins no NodeID")
	}
	p, _ = SignSelf(fixedKey, selfInfo(), fixedTime)
	if rec, _ := ReadSelf(p); rec.Via != nil {
		t.Errorf("via %v from a record without one", rec.Via)
	}
}
