package netutil

import "testing"

// TestLender: at most max buffers are out at once, each empty with room for
// the size; a returned one can be borrowed again.
func TestLender(t *testing.T) {
	l := NewLender(1000, 2)
	a, b := l.Borrow(), l.Borrow()
	if a == nil || b == nil {
		t.Fatal("a Lender of two refused the first two")
	}
	if len(*a) != 0 || cap(*a) < 1000 {
		t.Fatalf("borrowed len %d cap %d; want empty with room for 1000", len(*a), cap(*a))
	}
	if l.Borrow() != nil {
		t.Fatal("a Lender of two lent a third")
	}
	*a = append(*a, "used"...)
	l.Return(a)
	c := l.Borrow()
	if c == nil || len(*c) != 0 {
		t.Fatal("no empty buffer after one came back")
	}
	l.Return(b)
	l.Return(c)
}
