package http

import (
	"testing"
)

func FuzzDecodeCall(f *testing.F) {
	for _, s := range []string{`{"operation":"demo/echo","input":{"text":"x"}}`, `{}`, `{"operation":1}`, `[`, `{"operation":"a"} x`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeCall(b)
		if err == nil && req.Operation == "" {
			t.Fatal("accepted a call without an operation")
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	for _, s := range []string{`{"calls":[{"operation":"a/b"},{"operation":"c/d","input":1}]}`, `{"calls":[]}`, `{"calls":[{}]}`, `{"calls":null}`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeBatch(b, 4)
		if err != nil {
			return
		}
		if len(req.Calls) > 4 {
			t.Fatal("accepted more calls than the limit")
		}
		for _, c := range req.Calls {
			if c.Operation == "" {
				t.Fatal("accepted a call without an operation")
			}
		}
	})
}
