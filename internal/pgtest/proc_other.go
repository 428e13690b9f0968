//go:build !linux

package pgtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// serverSysProcAttr runs the server as cred (nil: as us).
func serverSysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}

// descendants returns all processes descending from pid, as listed by ps.
func descendants(pid int) ([]procID, error) {
	out, err := exec.Command("ps", "-A", "-o", "pid=", "-o", "ppid=").Output()
	if err != nil {
		return nil, fmt.Errorf("pgtest: listing processes: %w", err)
	}
	children := map[int][]procID{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		p, err1 := strconv.Atoi(f[0])
		pp, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil {
			children[pp] = append(children[pp], procID{pid: p})
		}
	}
	var all []procID
	queue := []int{pid}
	for len(queue) > 0 {
		for _, child := range children[queue[0]] {
			all = append(all, child)
			queue = append(queue, child.pid)
		}
		queue = queue[1:]
	}
	return all, nil
}

// alive reports whether the process still exists.
func (p procID) alive() bool {
	return syscall.Kill(p.pid, 0) == nil
}

// waitStopped gives a SIGSTOP time to take effect.
func waitStopped(pid int, done <-chan struct{}) {
	select {
	case <-done:
	case <-time.After(50 * time.Millisecond):
	}
}

// ProcessCPU is not available outside Linux.
func ProcessCPU(pid int) (time.Duration, error) {
	return 0, fmt.Errorf("pgtest: the CPU time of process %d: only on Linux", pid)
}
