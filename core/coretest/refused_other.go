//go:build !unix

package coretest

import (
	"net"
	"testing"
)

// RefusedAddr returns a 127.0.0.1 address whose connects are refused: the
// port of a listener it closed (which another test could be handed).
func RefusedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
