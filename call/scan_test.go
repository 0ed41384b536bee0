package call

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
)

type scanIn struct {
	ID    int            `json:"id"`
	Name  string         `json:"name"`
	List  []string       `json:"list,omitempty"`
	Map   map[string]int `json:"map,omitempty"`
	Ptr   *int           `json:"ptr"`
	Float float64        `json:"float"`
	Bool  bool           `json:"bool"`
	Inner *struct {
		N []float64 `json:"n"`
	} `json:"inner,omitempty"`
}

// scanSchemas are compiled and full-validator forms of a few schemas.
func scanSchemas(t testing.TB) []struct {
	fast *vnode
	full *jsonschema.Resolved
} {
	var out []struct {
		fast *vnode
		full *jsonschema.Resolved
	}
	derived, err := jsonschema.For[scanIn](nil)
	if err != nil {
		t.Fatal(err)
	}
	empty, _ := jsonschema.For[struct{}](nil)
	anything, _ := jsonschema.For[any](nil)
	for _, s := range []*jsonschema.Schema{derived, empty, anything, {Type: "number"}, {Types: []string{"null", "integer"}},
		{Type: "object", AdditionalProperties: &jsonschema.Schema{Type: "string"}}} {
		raw, _ := json.Marshal(s)
		fast := compileSchema(raw)
		if fast == nil {
			t.Fatalf("schema %s not compiled", raw)
		}
		full, err := s.Resolve(nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, struct {
			fast *vnode
			full *jsonschema.Resolved
		}{fast, full})
	}
	return out
}

// fullValid is checkInput's full validation.
func fullValid(r *jsonschema.Resolved, b []byte) bool {
	var v any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return false
	}
	return r.Validate(jsonNumbers(v)) == nil
}

func TestCompiledSchema(t *testing.T) {
	schemas := scanSchemas(t)
	derived := schemas[0]
	for _, tc := range []struct {
		in   string
		fast bool // the compiled form vouches for it
	}{
		{`{"id":42,"name":"n","ptr":null,"float":1.5,"bool":true}`, true},
		{` {"id":4.0,"name":"n","ptr":7,"float":1,"bool":false,"list":["a"],"map":{"a":1},"inner":{"n":[1,2.5]}} `, true},
		{`{"id":1.5,"name":"n","ptr":null,"float":1,"bool":true}`, false},                   // not an integer
		{`{"name":"n","ptr":null,"float":1,"bool":true}`, false},                            // id missing
		{`{"id":1,"name":"n","ptr":null,"float":1,"bool":true,"x":1}`, false},               // closed
		{`{"id":1,"id":2,"name":"n","ptr":null,"float":1,"bool":true}`, false},              // duplicate: left to the validator
		{`{"id":1,"name":"n","ptr":null,"float":1,"bool":true,"map":{"a":"b"}}`, false},     // map of integers
		{`{"id":1,"name":"n","ptr":null,"float":1,"bool":true} x`, false},                   // trailing data
		{`{"id":1e400,"name":"n","ptr":null,"float":1,"bool":true}`, false},                 // out of range
		{`{"id":1,"name":"n","ptr":null,"float":1,"bool":true,"inner":{"n":["1"]}}`, false}, // nested
	} {
		fast := derived.fast.validInput([]byte(tc.in))
		if fast != tc.fast {
			t.Errorf("%s: compiled %v, want %v", tc.in, fast, tc.fast)
		}
		if fast && !fullValid(derived.full, []byte(tc.in)) {
			t.Errorf("%s: compiled valid, validator not", tc.in)
		}
	}
	if raw, _ := json.Marshal(&jsonschema.Schema{Type: "string", Pattern: "^a"}); compileSchema(raw) != nil {
		t.Error("a schema with a pattern compiled")
	}
}

// FuzzCompiledSchema: what a compiled schema vouches for, the full
// validator accepts.
func FuzzCompiledSchema(f *testing.F) {
	f.Add([]byte(`{"id":42,"name":"n","ptr":null,"float":1.5,"bool":true}`))
	f.Add([]byte(`{"id":4.0,"name":"n","ptr":7,"float":1,"bool":false,"list":["a"],"map":{"a":1},"inner":{"n":[1,2.5]}}`))
	f.Add([]byte(`[1, {"a": "b"}, -0.5e-3, null]`))
	f.Add([]byte(`12345678901234567890`))
	schemas := scanSchemas(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for i, s := range schemas {
			if s.fast.validInput(b) && !fullValid(s.full, b) {
				t.Fatalf("schema %d: %q compiled valid, validator not", i, b)
			}
		}
	})
}

// TestDirectEncoders: the frames written directly decode to what
// json.Marshal's would, and invalid JSON still fails to encode.
func TestDirectEncoders(t *testing.T) {
	fwd := &Forwarded{ID: "u", Scopes: []string{"a"}}
	for _, p := range []RequestPayload{
		{OperationID: "a/b"},
		{OperationID: `q"<`, Input: json.RawMessage(` {"x" : [1, "<&>"]} `), AuthToken: "tok\n", ForwardedFor: fwd, Window: CallWindow},
		{OperationID: "a/b", ForwardedFor: &Forwarded{ID: "bare"}},
		{OperationID: "a/b", ForwardedFor: &Forwarded{ID: "x\"<\xff\u2028", Scopes: []string{"s1", "", "é\\"}}},
		{OperationID: "a/b", Input: json.RawMessage(`1`), ForwardedFor: &Forwarded{ID: "", Scopes: []string{}}},
	} {
		fr, err := encodeRequest("id", p)
		if err != nil {
			t.Fatal(err)
		}
		env, err := DecodeEnvelope(fr[4:])
		if err != nil || env.Type != TypeRequested || env.ID != "id" {
			t.Fatalf("%+v, %v", env, err)
		}
		var got, want RequestPayload
		if err := json.Unmarshal(env.Payload, &got); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(p)
		_ = json.Unmarshal(b, &want)
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if !bytes.Equal(g, w) {
			t.Errorf("request %s, want %s", g, w)
		}
	}
	for _, out := range []string{"", `{"a": "<b>"}`, `7`} {
		fr, err := encodeResponded("id", json.RawMessage(out))
		if err != nil {
			t.Fatal(err)
		}
		env, _ := DecodeEnvelope(fr[4:])
		got, err := decodeOutput(env.Payload)
		want := out
		if want == "" {
			want = "null"
		}
		var g, w any
		_ = json.Unmarshal(got, &g)
		_ = json.Unmarshal([]byte(want), &w)
		if err != nil || !reflect.DeepEqual(g, w) {
			t.Errorf("output %q: got %s, %v", out, got, err)
		}
	}
	if _, err := encodeResponded("id", json.RawMessage(`{"a":`)); err == nil {
		t.Error("invalid output encoded")
	}
	if _, err := encodeRequest("id", RequestPayload{OperationID: "a", Input: json.RawMessage(`[1,`)}); err == nil {
		t.Error("invalid input encoded")
	}
}
