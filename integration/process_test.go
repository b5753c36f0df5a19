//go:build integration

package integration

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

type process struct {
	cmd     *exec.Cmd
	logPath string
}

func startProcess(t *testing.T, logPath, bin string, args ...string) *process {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := ownGroup(exec.Command(bin, args...))
	cmd.Env = vault.env()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &process{cmd: cmd, logPath: logPath}
}

func (p *process) stop() { stopProcess(p.cmd, 10*time.Second) }

func (p *process) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// pathWithVault puts the vault binary under test first on PATH, for shell flows.
func pathWithVault() string {
	return binDir + string(os.PathListSeparator) + os.Getenv("PATH")
}
