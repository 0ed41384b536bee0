package callbench

import (
	"fmt"
	"testing"
	"time"
)

// h2loadOutput is the summary h2load 1.52 prints.
const h2loadOutput = `starting benchmark...
spawning thread #0: 1 total client(s). 20000 total requests
TLS Protocol: TLSv1.3
Application protocol: h2
finished in 1.92s, 10398.37 req/s, 1.21MB/s
requests: 20000 total, 20000 started, 20000 done, %s succeeded, 0 failed, 0 errored, 0 timeout
status codes: %s 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 2.32MB (2430231) total, 152.80KB (156466) headers (space savings 93.47%%), 1.28MB (1340000) data
                     min         max         mean         sd        +/- sd
time for request:      302us      7.13ms      1.51ms       512us    71.06%%
`

func TestParseH2Load(t *testing.T) {
	res, err := parseH2Load(fmt.Sprintf(h2loadOutput, "20000", "20000"))
	if err != nil || res.Rate != 10398.37 || res.Mean != 1510*time.Microsecond {
		t.Fatalf("parse: %+v, %v", res, err)
	}
	if _, err := parseH2Load(fmt.Sprintf(h2loadOutput, "19990", "19990")); err == nil {
		t.Error("failed requests accepted")
	}
	if _, err := parseH2Load(fmt.Sprintf(h2loadOutput, "20000", "19000")); err == nil {
		t.Error("non-2xx answers accepted")
	}
	if _, err := parseH2Load("connect: connection refused"); err == nil {
		t.Error("garbage accepted")
	}
}
