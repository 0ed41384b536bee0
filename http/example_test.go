package http_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	alkhttp "github.com/alkdev/alknet/http"
)

// A registry's operation is reachable as REST; serve the same Server as a
// core.Handler to reach it over h3, h2, http/1.1 and alknet/http too.
func Example() {
	reg := call.NewRegistry()
	type in struct {
		Name string `json:"name"`
	}
	_ = call.Register(reg, call.Spec{Name: "hello/greet", Access: core.AccessControl{Public: true}},
		func(_ context.Context, _ *call.Request, i in) (string, error) { return "hello, " + i.Name, nil })
	srv, err := alkhttp.New(alkhttp.Config{Registry: reg})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/v1/ops/hello/greet", strings.NewReader(`{"name":"ada"}`)))
	fmt.Println(rec.Code, rec.Body.String())
	// Output: 200 "hello, ada"
}
