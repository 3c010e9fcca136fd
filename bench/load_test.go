//go:build linux

package main

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercentilesByNearestRank(t *testing.T) {
	var s sample
	for i := 100; i >= 1; i-- {
		s.latencies = append(s.latencies, time.Duration(i)*time.Millisecond)
	}
	s.sort()
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 99.9: 100 * time.Millisecond} {
		if got := s.pct(p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	var m sample
	m.merge(sample{n: 2, errs: 1, elapsed: time.Second, latencies: []time.Duration{3}})
	m.merge(sample{n: 1, elapsed: time.Second, latencies: []time.Duration{1}})
	m.sort()
	if m.n != 3 || m.errs != 1 || m.rate() != 1.5 || m.pct(1) != 1 {
		t.Errorf("merge: %+v", m)
	}
}

func TestProcReadersOnThisProcess(t *testing.T) {
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
	}
	cpu, err := cpuTime(os.Getpid())
	if err != nil || cpu <= 0 {
		t.Fatalf("cpuTime = %v, %v", cpu, err)
	}
	hwm, err := statusKB(os.Getpid(), "VmHWM")
	if err != nil || hwm <= 0 {
		t.Fatalf("VmHWM = %v, %v", hwm, err)
	}
}

func TestResetPeakRSS(t *testing.T) {
	// Touch 64 MiB and hand it back to the OS: the peak stays up until it
	// is reset, then it is the current RSS again.
	touch(64 << 20)
	debug.FreeOSMemory()
	peak, err := statusKB(os.Getpid(), "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	if err := resetPeakRSS(os.Getpid()); err != nil {
		t.Skipf("this kernel cannot reset VmHWM: %v", err)
	}
	after, err1 := statusKB(os.Getpid(), "VmHWM")
	rss, err2 := statusKB(os.Getpid(), "VmRSS")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	// A few MB of slack: the runtime may map pages between the readings.
	if after >= peak || after > rss+8<<10 {
		t.Fatalf("after the reset VmHWM is %d kB with VmRSS %d kB; the peak before was %d kB", after, rss, peak)
	}
}

// touch writes n bytes of a fresh allocation, so they count in RSS.
func touch(n int) byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b[n-1]
}

func TestSyncLatency(t *testing.T) {
	for _, overwrite := range []bool{false, true} {
		s, err := syncLatency(t.TempDir(), 5, overwrite)
		if err != nil {
			t.Fatal(err)
		}
		if s.n != 5 || s.errs != 0 || s.pct(50) <= 0 {
			t.Fatalf("syncLatency(overwrite %v) = n %d, errs %d, p50 %v", overwrite, s.n, s.errs, s.pct(50))
		}
	}
}

func TestBinaryEnv(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "fake")
	script := "#!/bin/sh\n[ \"$1\" = environ ] || exit 1\necho HOME=/x\necho GOMEMLIMIT=7MiB\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := binaryEnv(bin, "GOMEMLIMIT"); got != "7MiB" {
		t.Errorf("GOMEMLIMIT = %q", got)
	}
	if got := binaryEnv(bin, "AUTOMEMLIMIT"); got != "(unset)" {
		t.Errorf("AUTOMEMLIMIT = %q", got)
	}
}
