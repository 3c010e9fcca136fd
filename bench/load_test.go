//go:build linux

package main

import (
	"os"
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
	// Touch 64 MiB, hand it back to the OS, and the peak must fall back
	// once reset.
	touch(64 << 20)
	peak, err := statusKB(os.Getpid(), "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	debug.FreeOSMemory()
	if err := resetPeakRSS(os.Getpid()); err != nil {
		t.Skipf("this kernel cannot reset VmHWM: %v", err)
	}
	after, err := statusKB(os.Getpid(), "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	if after > peak-32<<10 {
		t.Fatalf("VmHWM %d kB after the reset, %d kB before: not reset", after, peak)
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
	s, err := syncLatency(t.TempDir(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if s.n != 5 || s.errs != 0 || s.pct(50) <= 0 {
		t.Fatalf("syncLatency = n %d, errs %d, p50 %v", s.n, s.errs, s.pct(50))
	}
}
