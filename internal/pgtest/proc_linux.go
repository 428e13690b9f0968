package pgtest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// serverSysProcAttr runs the server as cred (nil: as us) and has the kernel
// send it SIGQUIT (immediate shutdown) if the test process dies without
// stopping it.
func serverSysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
}

// procStat is the part of /proc/<pid>/stat we use.
type procStat struct {
	state byte
	ppid  int
	start uint64
}

func readProcStat(pid int) (procStat, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime priority nice num_threads
	// itrealvalue starttime ...; comm may contain spaces and parentheses.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := bytes.Fields(data[i+1:])
	if len(fields) < 20 {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	ppid, err := strconv.Atoi(string(fields[1]))
	if err != nil {
		return procStat{}, err
	}
	start, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return procStat{}, err
	}
	return procStat{state: fields[0][0], ppid: ppid, start: start}, nil
}

// descendants returns all processes descending from pid.
func descendants(pid int) ([]procID, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("pgtest: listing processes: %w", err)
	}
	children := map[int][]procID{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(p)
		if err != nil {
			continue // exited meanwhile
		}
		children[st.ppid] = append(children[st.ppid], procID{pid: p, start: st.start})
	}
	var out []procID
	queue := []int{pid}
	for len(queue) > 0 {
		for _, child := range children[queue[0]] {
			out = append(out, child)
			queue = append(queue, child.pid)
		}
		queue = queue[1:]
	}
	return out, nil
}

// alive reports whether the process still runs (a zombie does not).
func (p procID) alive() bool {
	st, err := readProcStat(p.pid)
	if err != nil {
		return false
	}
	return st.start == p.start && st.state != 'Z' && st.state != 'X' && st.state != 'x'
}

// waitStopped waits (briefly) until pid is in the stopped state, so that it
// can no longer fork, or until done is closed.
func waitStopped(pid int, done <-chan struct{}) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		st, err := readProcStat(pid)
		if err != nil || st.state == 'T' || st.state == 'Z' {
			return
		}
		select {
		case <-done:
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// ProcessCPU returns the CPU time the process pid (a server backend on this
// machine) has used, from /proc/<pid>/schedstat (nanoseconds on a CPU,
// then waiting, then slices).
func ProcessCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/schedstat")
	if err != nil {
		return 0, err
	}
	fields := bytes.Fields(data)
	if len(fields) == 0 {
		return 0, fmt.Errorf("pgtest: empty /proc/%d/schedstat", pid)
	}
	ns, err := strconv.ParseInt(string(fields[0]), 10, 64)
	return time.Duration(ns), err
}
