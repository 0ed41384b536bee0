package dns

import (
	"bytes"
	"strconv"
	"testing"

	mdns "github.com/miekg/dns"
)

// FuzzReadFrame feeds the DoQ/DoT framing reader and the answer path any
// byte stream: it must return frames or an error, never panic or loop.
func FuzzReadFrame(f *testing.F) {
	q, _ := query("www.example.org.", mdns.TypeA).Pack()
	f.Add(appendFrame(nil, q))                  // one valid query
	f.Add(appendFrame(appendFrame(nil, q), q))  // two pipelined queries
	f.Add([]byte{0, 0})                         // zero length
	f.Add([]byte{0})                            // end inside the length
	f.Add([]byte{0xff, 0xff, 1, 2})             // end inside the message
	f.Add(appendFrame(nil, q[:11]))             // shorter than a header
	f.Add(appendFrame(nil, append(q, 0xc0, 1))) // trailing garbage
	s := testServer(f, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for range 100 {
			msg, err := readFrame(r, minMessageBytes, nil)
			if err != nil {
				return
			}
			if len(msg) < minMessageBytes {
				t.Fatalf("frame of %d bytes accepted", len(msg))
			}
			_, _ = s.answerStream(msg, true)
		}
	})
}

// FuzzDecodeSignedPacket checks the signed-packet decoder on any input;
// seeds carry a valid signature so mutations reach the DNS parser.
func FuzzDecodeSignedPacket(f *testing.F) {
	p, err := Sign(fixedKey, fixedTime, []mdns.RR{
		mustRR(f, "_alknet. 300 IN SVCB 1 . alpn=doq port=853"),
		mustRR(f, "_alknet. 300 IN TXT v=1"),
	})
	if err != nil {
		f.Fatal(err)
	}
	good := p.Bytes()
	f.Add(good)                       // valid
	f.Add(good[:32])                  // key only
	f.Add(good[:104])                 // no packet
	f.Add(append(good, 0))            // trailing byte: bad signature
	f.Add(make([]byte, 32+64+8+1001)) // too large
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeSignedPacket(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Bytes(), b) {
			t.Fatal("accepted packet does not re-encode to its input")
		}
		_ = packetZone(p, p.Key().String()+".alk.test.")
		_, _ = ReadSelf(p)
	})
}

// FuzzDecodeRequest checks the alknet/dns request decoder.
func FuzzDecodeRequest(f *testing.F) {
	p, _ := Sign(fixedKey, fixedTime, []mdns.RR{mustRR(f, "_a. 300 IN A 192.0.2.1")})
	f.Add(EncodePublish(p))         // valid publish
	f.Add(EncodeFetch(p.Key()))     // valid fetch
	f.Add([]byte("GK"))             // fetch without key
	f.Add([]byte("PK"))             // publish without packet
	f.Add([]byte("ZZ0123456789"))   // unknown kind
	f.Add(encodeResponse(204, nil)) // a response, not a request
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeRequest(b)
		if err != nil {
			return
		}
		if (req.Publish == nil) == req.Fetch.IsZero() {
			t.Fatalf("request is neither or both kinds: %+v", req)
		}
	})
}

// FuzzDHTItem checks the decoder of BEP 44 items from DHT replies on any
// seq, v and signature; the seed is a valid item so mutations reach the
// signature check and the DNS parser.
func FuzzDHTItem(f *testing.F) {
	p, err := Sign(fixedKey, fixedTime, []mdns.RR{mustRR(f, "_alknet. 300 IN SVCB 1 . alpn=doq port=853")})
	if err != nil {
		f.Fatal(err)
	}
	v := append([]byte(strconv.Itoa(len(p.packet))+":"), p.packet...)
	f.Add(int64(p.ts), v, p.sig[:])
	f.Add(int64(-1), v, p.sig[:])
	f.Add(int64(p.ts), []byte("i42e"), p.sig[:])
	f.Add(int64(p.ts), []byte("3:ab"), p.sig[:])
	f.Add(int64(p.ts), []byte("01:a"), []byte{})
	f.Fuzz(func(t *testing.T, seq int64, v, sig []byte) {
		var s [64]byte
		copy(s[:], sig)
		got, err := decodeDHTItem(p.key, [32]byte(p.key.PublicKey()), &seq, v, s)
		if err != nil {
			return
		}
		if got.Timestamp() != uint64(seq) || !bytes.HasSuffix(v, got.packet) || bencodedLen(len(got.packet)) != len(v) {
			t.Fatalf("accepted item does not match its input: seq %d v %q", seq, v)
		}
		_, _ = ReadSelf(got)
	})
}
