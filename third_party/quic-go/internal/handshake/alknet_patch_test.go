package handshake

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"testing"

	"github.com/quic-go/quic-go/internal/monotime"
	"github.com/quic-go/quic-go/internal/protocol"
	"github.com/quic-go/quic-go/internal/utils"
)

// newAEADPair returns a client's and a server's 1-RTT AEADs of one
// connection, their handshake confirmed.
func newAEADPair(t *testing.T, id uint16) (client, server *updatableAEAD) {
	t.Helper()
	suite := getCipherSuite(id)
	cs, ss := make([]byte, suite.Hash.Size()), make([]byte, suite.Hash.Size())
	rand.Read(cs)
	rand.Read(ss)
	var rtt utils.RTTStats
	client = newUpdatableAEAD(&rtt, nil, utils.DefaultLogger, protocol.Version1)
	server = newUpdatableAEAD(&rtt, nil, utils.DefaultLogger, protocol.Version1)
	client.SetReadKey(suite, ss)
	client.SetWriteKey(suite, cs)
	server.SetWriteKey(suite, ss)
	server.SetReadKey(suite, cs)
	client.SetHandshakeConfirmed()
	server.SetHandshakeConfirmed()
	return client, server
}

// TestNextSendKeyDerivedOnUpdate is alknet's patch 11: setting a write key
// no longer derives the next key phase's send AEAD (~0.8 KiB a connection
// keeps for its life if it never updates its keys), while a read key still
// derives the next receive AEAD ahead of time (RFC 9001, section 6.3), and
// keys still roll both ways, initiated by either side.
func TestNextSendKeyDerivedOnUpdate(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   uint16
	}{
		{"aes128", tls.TLS_AES_128_GCM_SHA256},
		{"aes256", tls.TLS_AES_256_GCM_SHA384},
		{"chacha20", tls.TLS_CHACHA20_POLY1305_SHA256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			suite := getCipherSuite(tc.id)
			secret := make([]byte, suite.Hash.Size())
			var rtt utils.RTTStats
			read := testing.AllocsPerRun(50, func() {
				newUpdatableAEAD(&rtt, nil, utils.DefaultLogger, protocol.Version1).SetReadKey(suite, secret)
			})
			write := testing.AllocsPerRun(50, func() {
				newUpdatableAEAD(&rtt, nil, utils.DefaultLogger, protocol.Version1).SetWriteKey(suite, secret)
			})
			if write >= read {
				t.Errorf("SetWriteKey makes %v allocations, SetReadKey %v: the next send AEAD is derived ahead of a key update", write, read)
			}

			reset := SetKeyUpdateInterval(4)
			t.Cleanup(reset)
			client, server := newAEADPair(t, tc.id)
			ad := []byte("header")
			now := monotime.Now()
			send := func(from, to *updatableAEAD, pn protocol.PacketNumber) {
				t.Helper()
				msg := []byte{byte(pn), 'x'}
				kp := from.KeyPhase()
				ct := from.Seal(nil, msg, pn, ad)
				got, err := to.Open(nil, ct, now, pn, kp, ad)
				if err != nil {
					t.Fatalf("packet %d (key phase %d): %v", pn, from.keyPhase, err)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("packet %d: opened %x, sealed %x", pn, got, msg)
				}
			}
			// Each packet acknowledges the last one it answers, as an ACK
			// frame would: the server's packet pn the client's pn-1, the
			// client's packet pn the server's pn.
			ack := func(a *updatableAEAD, pn protocol.PacketNumber) {
				t.Helper()
				if err := a.SetLargestAcked(pn); err != nil {
					t.Fatalf("ack of packet %d: %v", pn, err)
				}
			}
			for pn := protocol.PacketNumber(0); pn < 100; pn++ {
				send(server, client, pn)
				if pn > 0 {
					ack(client, pn-1)
				}
				send(client, server, pn)
				ack(server, pn)
			}
			if server.keyPhase < 3 || client.keyPhase != server.keyPhase {
				t.Errorf("key phases: server %d, client %d, want the same, at least 3", server.keyPhase, client.keyPhase)
			}
		})
	}
}
