//go:build integration

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Every process the suite starts (Vault, Agent, the simulator) runs in a process group of
// its own, and stopping it stops the whole group. Vault starts the plugin as its child; a
// Vault that is stopped (or killed, as the raft failover test does to the active node) would
// otherwise leave that plugin process running after the suite.

var started struct {
	sync.Mutex
	cmds []*exec.Cmd
}

func ownGroup(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	started.Lock()
	started.cmds = append(started.cmds, cmd)
	started.Unlock()
	return cmd
}

// killGroup ends whatever is left of cmd's process group.
func killGroup(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.SysProcAttr != nil && cmd.SysProcAttr.Setpgid {
		_ = syscall.Kill(-cmd.Process.Pid, sig)
	}
}

// leftoverProcesses lists the running processes in any group the suite started: run after
// the suite has stopped everything, it must find none.
func leftoverProcesses() []string {
	groups := map[int]bool{}
	started.Lock()
	for _, c := range started.cmds {
		if c.Process != nil {
			groups[c.Process.Pid] = true
		}
	}
	started.Unlock()
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces, so count from its ')'.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		if pgrp, _ := strconv.Atoi(f[2]); groups[pgrp] {
			cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return out
}

// descendants lists the processes below pid (Vault's plugin children may set a process group
// of their own, so killing Vault's group alone can miss them).
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		child, _ := strconv.Atoi(e.Name())
		if len(f) >= 2 {
			ppid, _ := strconv.Atoi(f[1])
			children[ppid] = append(children[ppid], child)
		}
	}
	var out []int
	for todo := []int{pid}; len(todo) > 0; {
		p := todo[0]
		todo = todo[1:]
		for _, c := range children[p] {
			out = append(out, c)
			todo = append(todo, c)
		}
	}
	return out
}
