package core

import (
	"crypto/ed25519"
	"crypto/tls"
	"reflect"
	"testing"
)

// FuzzRelayHeader checks that no header frame body makes the decoders
// panic, and that what decodes passes its own checks again.
func FuzzRelayHeader(f *testing.F) {
	for _, seed := range []string{
		`{"op":"listen"}`, // a worker's registration
		`{"op":"connect","node":"k5ydt4kqowrs5kpyc6bdd5b5jzsxdgwbj1gbqb1oxqnnk9jxkoco","alpn":"alknet/ssh"}`, // a client's
		`{"op":"accept","alpn":"alknet/ssh","from":"192.0.2.1:4433","client":""}`,                            // the head's
		`{"ok":true}`, `{"error":"no-node","reason":"no such node attached to this head"}`, // replies
		`{"op":"punch"}`, `{}`, `[]`, `{"op":"listen"}{}`, "\x00", `{"op":"accept","alpn":"\u0000"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeRelayRequest(b); err == nil {
			if r.Op == "" {
				t.Fatalf("decoded %q with no op", b)
			}
		}
		if r, err := decodeRelayReply(b); err == nil && r.OK == (r.Error != "") {
			t.Fatalf("decoded %q as both or neither ok and error", b)
		}
	})
}

// TestRelayServerHoldsNoKeys asserts by construction that the head cannot
// read what it relays: nothing the relay server holds is TLS state or a
// key, down through its fields, so relayed streams can only be spliced.
func TestRelayServerHoldsNoKeys(t *testing.T) {
	forbidden := []reflect.Type{
		reflect.TypeFor[tls.Config](), reflect.TypeFor[tls.Conn](), reflect.TypeFor[tls.Certificate](),
		reflect.TypeFor[ed25519.PrivateKey](),
	}
	seen := map[reflect.Type]bool{}
	var walk func(path string, ty reflect.Type)
	walk = func(path string, ty reflect.Type) {
		if seen[ty] {
			return
		}
		seen[ty] = true
		for _, f := range forbidden {
			if ty == f {
				t.Errorf("%s is a %v: the relay must hold no TLS state or key", path, ty)
			}
		}
		switch ty.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Chan:
			walk(path, ty.Elem())
		case reflect.Map:
			walk(path+"[key]", ty.Key())
			walk(path+"[]", ty.Elem())
		case reflect.Struct:
			for i := range ty.NumField() {
				walk(path+"."+ty.Field(i).Name, ty.Field(i).Type)
			}
		}
	}
	walk("RelayServer", reflect.TypeFor[RelayServer]())
}
