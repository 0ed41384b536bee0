package http

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

func TestOpenAPIValidatesAndIsFiltered(t *testing.T) {
	f := start(t, Limits{})
	c := f.client(t, true)
	for _, tc := range []struct {
		token  string
		secret bool
	}{{"", false}, {f.admin, true}} {
		st, _, body := do(t, c, "GET", f.url("/openapi.json"), tc.token, "")
		if st != 200 {
			t.Fatalf("openapi.json: %d %s", st, body)
		}
		doc, err := openapi3.NewLoader().LoadFromData([]byte(body))
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		if err := doc.Validate(context.Background()); err != nil {
			t.Fatalf("validate: %v", err)
		}
		if got := doc.Paths.Find("/v1/ops/demo/secret") != nil; got != tc.secret {
			t.Errorf("token %q: secret listed = %v", tc.token, got)
		}
		if doc.Paths.Find("/v1/ops/demo/hidden") != nil {
			t.Error("an internal operation is listed")
		}
		// Every path can be called: a POST with an empty object answers
		// with a call error or an output, never a transport failure.
		for path, item := range doc.Paths.Map() {
			if item.Post == nil {
				t.Errorf("%s has no POST", path)
				continue
			}
			if strings.Contains(item.Post.Description, "(subscription)") {
				// A stream may not end: its status is what counts.
				req, _ := http.NewRequest("POST", f.url(path), strings.NewReader(`{"n":1}`))
				req.Header.Set("Accept", "text/event-stream")
				resp, err := c.Do(req)
				if err != nil || resp.StatusCode == 404 || resp.StatusCode == 401 || resp.StatusCode == 403 {
					t.Errorf("%s: %v %v", path, resp, err)
				}
				if resp != nil {
					resp.Body.Close()
				}
				continue
			}
			st, _, body := do(t, c, "POST", f.url(path), tc.token, `{}`)
			if st == 404 || st == 401 || st == 403 {
				t.Errorf("%s: %d %s", path, st, body)
			}
			if st >= 400 && !json.Valid([]byte(body)) {
				t.Errorf("%s: error body %q is not JSON", path, body)
			}
		}
	}
}
