package core

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// raceConn is a Conn that notes being closed.
type raceConn struct {
	Conn   // nil: only CloseWithError is used
	closed atomic.Bool
}

func (c *raceConn) CloseWithError(ErrorCode, string) error { c.closed.Store(true); return nil }

// fakeDial is one side of a race: after its delay it yields c or err,
// unless its context ends first; stubborn ignores the context, as a
// handshake past the point of no return does. started counts its calls.
type fakeDial struct {
	delay    time.Duration
	c        *raceConn
	err      error
	stubborn bool
	started  atomic.Int32
}

func (f *fakeDial) dial(ctx context.Context) (Conn, error) {
	f.started.Add(1)
	t := time.NewTimer(f.delay)
	defer t.Stop()
	if f.stubborn {
		<-t.C
	} else {
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.err != nil {
		return nil, f.err
	}
	return f.c, nil
}

// TestRaceDials: the head start, the winner, the loser closed, a fatal
// error ending the race, the caller's cancel, and the errors returned.
func TestRaceDials(t *testing.T) {
	identity := fmt.Errorf("%w: not the pinned key", errIdentity)
	ms := time.Millisecond
	tests := []struct {
		name          string
		headStart     time.Duration
		first, second *fakeDial
		cancelAfter   time.Duration
		want          int // winner: 0, 1, or -1 for none
		secondStarts  bool
		loserClosed   bool   // the first connects after losing and is closed
		errs          string // raceErrs.as("first"), when none wins
	}{
		{name: "first wins in its head start", headStart: time.Hour,
			first: &fakeDial{delay: 10 * ms, c: &raceConn{}}, second: &fakeDial{c: &raceConn{}},
			want: 0},
		{name: "first fails early: second at once", headStart: time.Hour,
			first: &fakeDial{delay: 5 * ms, err: errors.New("no udp")}, second: &fakeDial{delay: 5 * ms, c: &raceConn{}},
			want: 1, secondStarts: true},
		{name: "second wins; the first connects late and is closed", headStart: 10 * ms,
			first: &fakeDial{delay: 100 * ms, c: &raceConn{}, stubborn: true}, second: &fakeDial{delay: 5 * ms, c: &raceConn{}},
			want: 1, secondStarts: true, loserClosed: true},
		{name: "zero head start: both at once", headStart: 0,
			first: &fakeDial{delay: 30 * ms, c: &raceConn{}}, second: &fakeDial{delay: 10 * time.Second},
			want: 0, secondStarts: true},
		{name: "negative head start: second only after first fails", headStart: -1,
			first: &fakeDial{delay: 50 * ms, c: &raceConn{}}, second: &fakeDial{c: &raceConn{}},
			want: 0},
		{name: "negative head start, first fails", headStart: -1,
			first: &fakeDial{delay: 5 * ms, err: errors.New("refused")}, second: &fakeDial{delay: 5 * ms, c: &raceConn{}},
			want: 1, secondStarts: true},
		{name: "both fail: one line", headStart: 10 * ms,
			first: &fakeDial{delay: 30 * ms, err: errors.New("quicerr")}, second: &fakeDial{delay: 5 * ms, err: errors.New("tcperr")},
			want: -1, secondStarts: true, errs: "tcperr (first: quicerr)"},
		{name: "fatal from the second ends the race", headStart: 10 * ms,
			first: &fakeDial{delay: 10 * time.Second}, second: &fakeDial{delay: 5 * ms, err: identity},
			want: -1, secondStarts: true, errs: identity.Error()},
		{name: "fatal from the first: second never starts", headStart: time.Hour,
			first: &fakeDial{delay: 5 * ms, err: identity}, second: &fakeDial{c: &raceConn{}},
			want: -1, errs: identity.Error()},
		{name: "caller cancels", headStart: 5 * ms, cancelAfter: 30 * ms,
			first: &fakeDial{delay: 10 * time.Second}, second: &fakeDial{delay: 10 * time.Second},
			want: -1, secondStarts: true, errs: context.Canceled.Error()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancelAfter > 0 {
				time.AfterFunc(tc.cancelAfter, cancel)
			}
			start := time.Now()
			c, which, errs := raceDials(ctx, tc.headStart, tc.first.dial, tc.second.dial, isIdentityErr)
			if took := time.Since(start); took > 5*time.Second { // a dial's 10 s passed: the race did not end
				t.Errorf("took %v", took)
			}
			switch {
			case tc.want < 0 && c != nil:
				t.Errorf("got a connection from dial %d", which)
			case tc.want == 0 && (c != Conn(tc.first.c) || which != 0):
				t.Errorf("want the first dial's connection, got dial %d's", which)
			case tc.want == 1 && (c != Conn(tc.second.c) || which != 1):
				t.Errorf("want the second dial's connection, got dial %d's", which)
			}
			if tc.want < 0 {
				if got := errs.as("first"); got == nil || got.Error() != tc.errs {
					t.Errorf("errors %v, want %q", got, tc.errs)
				}
			}
			if started := tc.second.started.Load() > 0; started != tc.secondStarts {
				t.Errorf("second started: %v, want %v", started, tc.secondStarts)
			}
			if tc.loserClosed {
				deadline := time.Now().Add(5 * time.Second)
				for !tc.first.c.closed.Load() && time.Now().Before(deadline) {
					time.Sleep(5 * ms)
				}
				if !tc.first.c.closed.Load() {
					t.Error("the losing connection was not closed")
				}
			}
			if c != nil && c.(*raceConn).closed.Load() {
				t.Error("the winner was closed")
			}
		})
	}
}

// TestRaceOver: a race of transports ends at the node's own refusal and at
// an error about its key, not at a failure to get through.
func TestRaceOver(t *testing.T) {
	for _, tc := range []struct {
		err  error
		over bool
	}{
		{fmt.Errorf("core: quic dial: %w", &quic.TransportError{ErrorCode: 0x12a, Remote: true}), true}, // bad_certificate alert
		{&quic.ApplicationError{ErrorCode: 0x1, Remote: true}, true},
		{fmt.Errorf("%w: pin mismatch", errIdentity), true},
		{&quic.TransportError{ErrorCode: 0x1, Remote: false}, false},
		{&quic.TransportError{ErrorCode: quic.ConnectionRefused, Remote: true}, false}, // a full accept queue
		{&quic.ApplicationError{ErrorCode: 0x0, Remote: false}, false},
		{&quic.IdleTimeoutError{}, false},
		{errors.New("connection refused"), false},
	} {
		if got := raceOver(tc.err); got != tc.over {
			t.Errorf("raceOver(%v) = %v, want %v", tc.err, got, tc.over)
		}
	}
}
