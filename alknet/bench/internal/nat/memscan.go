package nat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// memoryContains reports whether the memory of process pid holds marker
// anywhere in its readable mappings (/proc/PID/maps and /proc/PID/mem; it
// needs the right to ptrace pid, as root has). The reach tests use it on
// the head: bytes a process decrypted stay in its buffers and heap for a
// while (Go does not clear freed memory), so a head that had seen a
// marker in plaintext would very likely still hold it.
func memoryContains(pid int, marker []byte) (bool, error) {
	if len(marker) == 0 {
		return false, errors.New("empty marker")
	}
	maps, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return false, err
	}
	defer maps.Close()
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return false, err
	}
	defer mem.Close()
	const chunk = 1 << 20
	buf := make([]byte, chunk+len(marker))
	sc := bufio.NewScanner(maps)
	read := 0
	for sc.Scan() {
		// start-end perms offset dev inode [path]
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[1][0] != 'r' || len(f) >= 6 && (f[5] == "[vvar]" || f[5] == "[vsyscall]" || f[5] == "[vvar_vclock]") {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		keep := 0 // bytes of the previous chunk kept, so a marker across chunks is found
		for off := start; off < end; {
			n := min(uint64(chunk), end-off)
			got, err := mem.ReadAt(buf[keep:keep+int(n)], int64(off))
			if got > 0 {
				read += got
				if bytes.Contains(buf[:keep+got], marker) {
					return true, nil
				}
			}
			if err != nil && !errors.Is(err, io.EOF) {
				break // an unreadable region (a guard page, say): skip the rest of it
			}
			tail := min(len(marker)-1, keep+got)
			copy(buf, buf[keep+got-tail:keep+got])
			keep = tail
			off += n
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	if read == 0 {
		return false, fmt.Errorf("read nothing of process %d's memory", pid)
	}
	return false, nil
}
