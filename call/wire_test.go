package call

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func frame(body string) []byte { return AppendFrame(nil, []byte(body)) }

func TestReadFrame(t *testing.T) {
	big := binary.BigEndian.AppendUint32(nil, HardMaxFrameBytes+1)
	for _, tc := range []struct {
		name string
		in   []byte
		want string
		err  error
	}{
		{"one frame", frame(`{"a":1}`), `{"a":1}`, nil},
		{"empty stream", nil, "", io.EOF},
		{"zero length", []byte{0, 0, 0, 0}, "", ErrEmptyFrame},
		{"oversized length", big, "", ErrFrameTooLarge},
		{"over the configured max", frame(strings.Repeat("x", 101)), "", ErrFrameTooLarge},
		{"truncated prefix", []byte{0, 0}, "", ErrFrameTruncated},
		{"truncated body", []byte{0, 0, 0, 9, 'a'}, "", ErrFrameTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadFrame(bytes.NewReader(tc.in), 100)
			if !errors.Is(err, tc.err) || string(got) != tc.want {
				t.Errorf("got %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestDecodeEnvelope(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
		id       string // id an error reports, for answering
	}{
		{"requested", `{"type":"call.requested","id":"1","payload":{"operationId":"a/b"}}`, true, ""},
		{"unknown keys ignored", `{"type":"call.completed","id":"1","payload":{},"extra":true}`, true, ""},
		{"null payload is present", `{"type":"call.aborted","id":"1","payload":null}`, true, ""},
		{"missing payload", `{"type":"call.aborted","id":"7"}`, false, "7"},
		{"missing type", `{"id":"7","payload":{}}`, false, "7"},
		{"missing id", `{"type":"call.aborted","payload":{}}`, false, ""},
		{"empty id", `{"type":"call.aborted","id":"","payload":{}}`, false, ""},
		{"credit with an empty id", `{"type":"call.credit","id":"","payload":{"id":"c","bytes":1}}`, true, ""},
		{"credit without an id", `{"type":"call.credit","payload":{"id":"c","bytes":1}}`, false, ""},
		{"unknown type", `{"type":"call.exit","id":"7","payload":{}}`, false, "7"},
		{"not json", `{"type":`, false, ""},
		{"array", `[1,2]`, false, ""},
		{"id not a string", `{"type":"call.aborted","id":7,"payload":{}}`, false, ""},
		{"invalid utf-8", "{\"type\":\"call.aborted\",\"id\":\"\xff\",\"payload\":{}}", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeEnvelope([]byte(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			var ee *EnvelopeError
			if err != nil && (!errors.As(err, &ee) || ee.ID != tc.id) {
				t.Errorf("error %v: want an EnvelopeError with id %q", err, tc.id)
			}
		})
	}
}

// FuzzReadFrame: any byte stream yields frames or an error, never a panic
// or an allocation beyond the limit.
func FuzzReadFrame(f *testing.F) {
	f.Add(frame(`{"type":"call.requested","id":"1","payload":{}}`)) // valid
	f.Add([]byte{0, 0, 0, 0})                                       // zero length
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})                           // 4 GiB claimed
	f.Add([]byte{0, 0, 1})                                          // truncated prefix
	f.Add(append(frame("{}"), 0, 0, 0, 5, 'x'))                     // good frame, then a truncated one
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			body, err := ReadFrame(r, 1<<16)
			if err != nil {
				return
			}
			if len(body) == 0 || len(body) > 1<<16 {
				t.Fatalf("frame of %d bytes", len(body))
			}
		}
	})
}

// TestEncodeEnvelopeAsMarshal: the envelope EncodeEnvelope writes is the
// one json.Marshal writes, with ids and types that need escaping too.
func TestEncodeEnvelopeAsMarshal(t *testing.T) {
	for _, tc := range []struct {
		typ, id string
		payload any
	}{
		{TypeRequested, "5f0c4a1e-0000-4000-8000-000000000000", RequestPayload{OperationID: "a/b", Input: json.RawMessage(`{"x": [1, 2]}`)}},
		{TypeResponded, "id", RespondedPayload{Output: json.RawMessage(`"<&>"`)}},
		{TypeAborted, `q"\<>&\u2028` + "\x01\xffé", emptyPayload},
		{"t\"ype", "", map[string]int{"n": 1}},
	} {
		got, err := EncodeEnvelope(tc.typ, tc.id, tc.payload)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := json.Marshal(tc.payload)
		body, _ := json.Marshal(Envelope{Type: tc.typ, ID: tc.id, Payload: p})
		if want := AppendFrame(nil, body); !bytes.Equal(got, want) {
			t.Errorf("got  %q\nwant %q", got, want)
		}
	}
}

// FuzzDecodeEnvelope: any frame body decodes or fails cleanly, and a
// decoded envelope re-encodes to one that decodes the same.
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte(`{"type":"call.requested","id":"1","payload":{"operationId":"a/b","input":{}}}`)) // valid
	f.Add([]byte(`{"type":"call.error","id":"x","payload":{"code":"NOT_FOUND","message":"m","retryable":false}}`))
	f.Add([]byte(`{"type":"call.exit","id":"1","payload":{}}`)) // unknown type
	f.Add([]byte(`{"id":"1"}`))                                 // missing keys
	f.Add([]byte("\xff\xfe"))                                   // not UTF-8
	f.Add([]byte(`{"type":"call.aborted","id":"1","payload":{}}{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := DecodeEnvelope(b)
		if err != nil {
			return
		}
		fr, err := EncodeEnvelope(env.Type, env.ID, env.Payload)
		if err != nil {
			return // payload that is valid JSON to the decoder but not re-encodable
		}
		body, err := ReadFrame(bytes.NewReader(fr), HardMaxFrameBytes)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeEnvelope(body)
		if err != nil || back.Type != env.Type || back.ID != env.ID {
			t.Fatalf("round trip: %+v, %v", back, err)
		}
	})
}

func TestDecodeCredit(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     CreditPayload // zero: an error
	}{
		{"credit", `{"id":"c","bytes":4096}`, CreditPayload{"c", 4096}},
		{"unknown keys ignored", `{"id":"c","bytes":1,"x":[]}`, CreditPayload{"c", 1}},
		{"absurd credit saturates", `{"id":"c","bytes":18446744073709551615}`, CreditPayload{"c", MaxCallWindow}},
		{"beyond 64 bits", `{"id":"c","bytes":18446744073709551616}`, CreditPayload{}},
		{"negative", `{"id":"c","bytes":-1}`, CreditPayload{}},
		{"zero", `{"id":"c","bytes":0}`, CreditPayload{}},
		{"fraction", `{"id":"c","bytes":1.5}`, CreditPayload{}},
		{"exponent", `{"id":"c","bytes":1e3}`, CreditPayload{}},
		{"string", `{"id":"c","bytes":"1"}`, CreditPayload{}},
		{"missing bytes", `{"id":"c"}`, CreditPayload{}},
		{"missing id", `{"bytes":1}`, CreditPayload{}},
		{"empty id", `{"id":"","bytes":1}`, CreditPayload{}},
		{"null", `null`, CreditPayload{}},
		{"array", `[1]`, CreditPayload{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeCredit(json.RawMessage(tc.in))
			if (err == nil) != (tc.want != CreditPayload{}) || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// FuzzDecodeCredit: any call.credit payload decodes to a call id and a
// credit within 1..MaxCallWindow, or fails cleanly.
func FuzzDecodeCredit(f *testing.F) {
	f.Add([]byte(`{"id":"c","bytes":4096}`))
	f.Add([]byte(`{"id":"c","bytes":18446744073709551615}`))
	f.Add([]byte(`{"id":"c","bytes":-1}`))
	f.Add([]byte(`{"id":"","bytes":1}`))
	f.Add([]byte(`{"bytes":1e400}`))
	f.Add([]byte("\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCredit(b)
		if err != nil {
			return
		}
		if c.ID == "" || c.Bytes == 0 || c.Bytes > MaxCallWindow {
			t.Fatalf("decoded %+v", c)
		}
		fr, err := EncodeEnvelope(TypeCredit, "", c)
		if err != nil {
			t.Fatal(err)
		}
		env, err := DecodeEnvelope(fr[4:])
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeCredit(env.Payload)
		if err != nil || back != c {
			t.Fatalf("round trip: %+v, %v", back, err)
		}
	})
}

func TestNewID(t *testing.T) {
	uuid4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := newID(), newID()
	if !uuid4.MatchString(a) || !uuid4.MatchString(b) || a == b {
		t.Errorf("ids %q, %q", a, b)
	}
}

// FuzzFastDecode: what the fast decoders take, encoding/json takes too,
// with the same result; and the plain form is taken.
func FuzzFastDecode(f *testing.F) {
	f.Add([]byte(`{"type":"call.requested","id":"1","payload":{"operationId":"a/b","input":{"x":[1,-2.5e3,true,null,"s"]},"window":262144}}`))
	f.Add([]byte(`{"operationId":"a/b","auth_token":"t","forwarded_for":{"id":"u","scopes":["a"]}}`))
	f.Add([]byte(`{"output":{"id":42,"name":"alknet-bench","data":"0123456789abcdefghijklm"}}`))
	f.Add([]byte(` { "type" : "a\"b" , "id":"1","payload":[] } `))
	f.Add([]byte(`{"Type":"x","id":"1","payload":1}`))
	f.Add([]byte(`{"window":-1,"operationId":"x"}`))
	f.Add([]byte(`{"output":01}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) {
			return
		}
		if env, ok := fastEnvelope(b); ok {
			var raw struct {
				Type    *string         `json:"type"`
				ID      *string         `json:"id"`
				Payload json.RawMessage `json:"payload"`
			}
			if err := json.Unmarshal(b, &raw); err != nil || raw.Type == nil || raw.ID == nil ||
				*raw.Type != env.Type || *raw.ID != env.ID || !bytes.Equal(raw.Payload, env.Payload) {
				t.Fatalf("fast %+v; encoding/json %v", env, err)
			}
		}
		if p, ok := fastRequest(b); ok {
			var want RequestPayload
			if err := json.Unmarshal(b, &want); err != nil || !reflect.DeepEqual(p, want) {
				t.Fatalf("fast %+v; encoding/json %+v, %v", p, want, err)
			}
		}
		if out, ok := fastOutput(b); ok {
			var want RespondedPayload
			if err := json.Unmarshal(b, &want); err != nil || !bytes.Equal(out, want.Output) {
				t.Fatalf("fast %s; encoding/json %s, %v", out, want.Output, err)
			}
		}
	})
}

func TestFastDecodePlainForms(t *testing.T) {
	env, ok := fastEnvelope([]byte(`{"type":"call.responded","id":"i","payload":{"output":{"a":[1,2]}}}`))
	if !ok || env.Type != TypeResponded || env.ID != "i" {
		t.Fatalf("envelope %+v, %v", env, ok)
	}
	out, ok := fastOutput(env.Payload)
	if !ok || string(out) != `{"a":[1,2]}` {
		t.Fatalf("output %s, %v", out, ok)
	}
	p, ok := fastRequest([]byte(`{"operationId":"a/b","input":{"x":1},"auth_token":"t","window":262144,"forwarded_for":{"id":"u"}}`))
	if !ok || p.OperationID != "a/b" || string(p.Input) != `{"x":1}` || p.AuthToken != "t" || p.Window != 262144 || p.ForwardedFor == nil || p.ForwardedFor.ID != "u" {
		t.Fatalf("request %+v, %v", p, ok)
	}
}

// TestFastForwarded: the plain forwarded_for a head writes decodes without
// encoding/json, to what encoding/json decodes; any other form is left to
// encoding/json.
func TestFastForwarded(t *testing.T) {
	for _, tc := range []struct {
		in   string
		fast bool
	}{
		{`{"id":"u"}`, true},
		{`{"id":"u","scopes":["a","b:c"]}`, true},
		{`{"id":"u","scopes":[]}`, true},
		{` { "scopes" : [ "a" , "b" ] , "id" : "u" } `, true},
		{`{"id":"u","scopes":["a\u0062"]}`, false}, // an escape
		{`{"id":"u","extra":1}`, false},            // a key it does not know
		{`{"id":"u","id":"v"}`, false},             // twice
		{`{"ID":"u"}`, false},                      // encoding/json's case folding
		{`{"id":"u","scopes":["a",1]}`, false},
		{`{"id":"u","scopes":null}`, false},
		{`null`, false},
	} {
		got, ok := fastForwarded([]byte(tc.in))
		if ok != tc.fast {
			t.Errorf("%s: fast %v, want %v", tc.in, ok, tc.fast)
			continue
		}
		if !ok {
			continue
		}
		var want *Forwarded
		if err := json.Unmarshal([]byte(tc.in), &want); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: fast %+v, encoding/json %+v", tc.in, got, want)
		}
	}
	// As a head encodes it.
	frame, err := encodeRequest("i", RequestPayload{OperationID: "a/b", ForwardedFor: &Forwarded{ID: "client", Scopes: []string{"call:route", "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	env, err := DecodeEnvelope(frame[4:])
	if err != nil {
		t.Fatal(err)
	}
	p, ok := fastRequest(env.Payload)
	if !ok || !reflect.DeepEqual(p.ForwardedFor, &Forwarded{ID: "client", Scopes: []string{"call:route", "x"}}) {
		t.Fatalf("request %+v, %v", p.ForwardedFor, ok)
	}
}

// TestFastEnvelopeTypeAllocs: decoding a known envelope type allocates no
// string of its own, as a type it does not know does.
func TestFastEnvelopeTypeAllocs(t *testing.T) {
	allocs := func(body string) (Envelope, float64) {
		var env Envelope
		n := testing.AllocsPerRun(100, func() { env, _ = fastEnvelope([]byte(body)) })
		return env, n
	}
	known, n := allocs(`{"type":"call.responded","id":"i","payload":{}}`)
	other, m := allocs(`{"type":"call.respondex","id":"i","payload":{}}`)
	if known.Type != TypeResponded || other.Type != "call.respondex" || n != m-1 {
		t.Fatalf("%q: %v allocations, %q: %v; want one fewer for the known type", known.Type, n, other.Type, m)
	}
}
