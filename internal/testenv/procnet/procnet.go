// Package procnet reads which TCP ports a process listens on, from Linux's
// /proc, for tests that must show a server opened no port it should not.
package procnet

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// ListenPorts returns the TCP ports process pid (0: this process) listens
// on, read from Linux's /proc: its socket descriptors matched against
// /proc/net/tcp and tcp6. Tests use it to show that a server opened no
// port it should not; it fails the test where /proc cannot be read, since
// there the claim cannot be checked.
func ListenPorts(t testing.TB, pid int) []int {
	t.Helper()
	proc := "self"
	if pid != 0 {
		proc = strconv.Itoa(pid)
	}
	fdDir := filepath.Join("/proc", proc, "fd")
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatalf("procnet: list the sockets of process %s (this check needs Linux's /proc): %v", proc, err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue // no IPv6 on this kernel
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local_address rem_address st ... inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] { // 0A: LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			p, err := strconv.ParseInt(hexPort, 16, 32)
			if err != nil {
				f.Close()
				t.Fatal(fmt.Errorf("procnet: %s: local address %q: %w", table, fields[1], err))
			}
			ports = append(ports, int(p))
		}
		f.Close()
	}
	return ports
}
