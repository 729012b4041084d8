//go:build unix

package redistest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStopGroup(t *testing.T) {
	tests := []struct {
		name   string
		script string
		grace  time.Duration
		within time.Duration // StopGroup returns within this
	}{
		// Like Postfix's master: the leader passes SIGTERM on to its group.
		{name: "leader stops its workers", script: `trap 'kill -TERM 0; exit 0' TERM`, grace: 10 * time.Second, within: 5 * time.Second},
		// The leader exits alone: its workers are killed after grace.
		{name: "workers left behind are killed", script: ``, grace: 300 * time.Millisecond, within: 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sh := NeedBinary(t, "sh")
			logPath := filepath.Join(t.TempDir(), "log")
			p, err := StartProcess(logPath, sh, "-c", tt.script+"\nsleep 60 & sleep 60 & echo started; wait")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Kill)
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				data, _ := os.ReadFile(logPath)
				if strings.Contains(string(data), "started") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the script did not start its workers")
				}
			}
			if !p.GroupRunning() {
				t.Fatal("GroupRunning = false while the group runs")
			}
			start := time.Now()
			p.StopGroup(tt.grace)
			if took := time.Since(start); took > tt.within {
				t.Errorf("StopGroup took %s, want < %s", took, tt.within)
			}
			if p.GroupRunning() {
				t.Fatal("a process of the group still runs after StopGroup")
			}
			p.StopGroup(tt.grace) // idempotent
		})
	}
}
