package harness

import (
	"fmt"
	"io"
)

// WriteGoal prints one goal line: goal NAME PROFILE ratio X target OPY met|missed.
func WriteGoal(w io.Writer, name, profile string, ratio float64, op string, target float64) {
	met := ratio <= target
	if op == ">=" {
		met = ratio >= target
	}
	verdict := map[bool]string{true: "met", false: "missed"}[met]
	fmt.Fprintf(w, "goal %s %s ratio %.3f target %s%g %s\n", name, profile, ratio, op, target, verdict)
}
