package ssh_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"sync/atomic"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/ssh"
)

// A server with a hot-swappable policy, commands enabled and a subsystem.
// Register it on core's router like any handler.
func ExampleNew() {
	_, nodeKey, _ := ed25519.GenerateKey(rand.Reader)
	peers := core.NewLiveDirectory(nil, nil) // the CLI fills it from [[peers]]

	var policy atomic.Pointer[ssh.Policy]
	rules := []ssh.Rule{}
	for _, text := range []string{"deny 169.254.0.0/16", "allow 10.0.0.0/8:80-443 principals=ops", "allow localhost:5432"} {
		r, err := ssh.ParseRule(text)
		if err != nil {
			log.Fatal(err)
		}
		rules = append(rules, r)
	}
	p := &ssh.Policy{Forward: rules, Env: []string{"LANG", "LC_*"}}
	if err := p.Validate(); err != nil {
		log.Fatal(err)
	}
	policy.Store(p) // a reload stores a new one

	srv, err := ssh.New(ssh.Config{
		HostKey:    nodeKey,
		Identities: peers,
		Policy:     policy.Load,
		Exec:       &ssh.Exec{Shell: "/bin/bash"},
		Subsystems: map[string]ssh.SubsystemFunc{
			"echo": func(ctx context.Context, rw io.ReadWriteCloser, id *core.Identity) error {
				_, err := io.Copy(rw, rw)
				return err
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(srv.ALPNs())
	// Output: [alknet/ssh alknet/fwd]
}

func ExampleParseRule() {
	for _, text := range []string{
		"allow 10.0.0.0/8:80-443 principals=ops",
		"deny [fd00::/8]:22",
		"allow *.Internal.Example.com.",
		"allow 10.0.0.0/33",
	} {
		r, err := ssh.ParseRule(text)
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(r)
	}
	// Output:
	// allow 10.0.0.0/8:80-443 principals=ops
	// deny [fd00::/8]:22
	// allow *.internal.example.com
	// error: ssh: rule "allow 10.0.0.0/33": target "10.0.0.0/33": bad address range: netip.ParsePrefix("10.0.0.0/33"): prefix length out of range
}
