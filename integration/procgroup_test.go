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

// Every process the suite starts (Vault, Agent, the simulator, Prometheus, Alertmanager) runs in
// a process group of its own, and stopping it stops the whole group and every process below
// it. Vault starts the plugin as its child; a Vault that is stopped (or killed, as the raft
// failover test does to the active node) would otherwise leave that plugin process running
// after the suite.

var started struct {
	sync.Mutex
	cmds       []*exec.Cmd
	pluginDirs []string // every Vault's plugin_directory: what runs from one is the suite's
}

func ownGroup(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	started.Lock()
	started.cmds = append(started.cmds, cmd)
	started.Unlock()
	return cmd
}

// notePluginDir records a Vault's plugin_directory, so that the leftover check finds a plugin
// process of that Vault wherever it sits in the process tree.
func notePluginDir(dir string) {
	started.Lock()
	started.pluginDirs = append(started.pluginDirs, dir+string(filepath.Separator))
	started.Unlock()
}

// killGroup ends whatever is left of cmd's process group.
func killGroup(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.SysProcAttr != nil && cmd.SysProcAttr.Setpgid {
		_ = syscall.Kill(-cmd.Process.Pid, sig)
	}
}

// proc is a running process as /proc shows it.
type proc struct {
	pid, ppid, pgrp int
	exe             string // the executable's path ("" when it cannot be read)
}

// processes lists the live processes (zombies left out).
func processes() []proc {
	var out []proc
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces, so count from its ')'.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgrp, _ := strconv.Atoi(f[2])
		exe, _ := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		out = append(out, proc{pid: pid, ppid: ppid, pgrp: pgrp, exe: strings.TrimSuffix(exe, " (deleted)")})
	}
	return out
}

// leftoverProcesses lists the running processes the suite started: any in a group it
// started, and any running a plugin from one of its Vaults' plugin directories. Run after
// the suite has stopped everything, it must find none.
func leftoverProcesses() []string {
	groups := map[int]bool{}
	started.Lock()
	for _, c := range started.cmds {
		if c.Process != nil {
			groups[c.Process.Pid] = true
		}
	}
	dirs := append([]string(nil), started.pluginDirs...)
	started.Unlock()
	var out []string
	for _, p := range processes() {
		ours := groups[p.pgrp]
		for _, d := range dirs {
			ours = ours || strings.HasPrefix(p.exe, d)
		}
		if ours {
			cmdline, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.pid), "cmdline"))
			out = append(out, strconv.Itoa(p.pid)+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return out
}

// descendants lists the processes below pid (Vault's plugin children may set a process group
// of their own, so killing Vault's group alone can miss them).
func descendants(pid int) []int {
	children := map[int][]int{}
	for _, p := range processes() {
		children[p.ppid] = append(children[p.ppid], p.pid)
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
