package dialfail

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWhy(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Failure
	}{
		{fmt.Errorf("policy: %w", os.ErrPermission), Denied},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, Refused},
		{syscall.EHOSTUNREACH, HostUnreachable},
		{&net.DNSError{Err: "no such host", IsNotFound: true}, HostUnreachable},
		{fmt.Errorf("dial: %w", context.DeadlineExceeded), HostUnreachable},
		{syscall.ENETUNREACH, NetworkUnreachable},
		{errors.New("boom"), Other},
	} {
		if got := Why(tc.err); got != tc.want {
			t.Errorf("Why(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
