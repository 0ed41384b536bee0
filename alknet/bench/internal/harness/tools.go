package harness

import (
	"fmt"
	"os"
	"os/exec"
)

// LookTool finds an executable of the comparison; sshd may live outside
// PATH.
func LookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if name == "sshd" {
		if _, err := os.Stat("/usr/sbin/sshd"); err == nil {
			return "/usr/sbin/sshd", nil
		}
	}
	return "", fmt.Errorf("bench: ssh: %s not found (Debian/Ubuntu: apt-get install openssh-client openssh-server iperf3)", name)
}
