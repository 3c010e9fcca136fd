//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// cpuSplit keeps the load generator off the servers' CPUs: the generator
// runs on CPU 0, the three servers on the others. Without it the generator
// competes with the server it measures, and the tail latency measures the
// scheduler rather than the server.
type cpuSplit struct {
	generator, servers string // taskset lists; empty when not split
}

// splitCPUs pins this process to the first CPU it may use and returns the
// list the servers are started on. It needs two CPUs and taskset; without
// them everything shares every CPU, as before.
func splitCPUs() (cpuSplit, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return cpuSplit{}, err
	}
	var cpus []int
	for i := range 1024 {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) < 2 {
		return cpuSplit{}, fmt.Errorf("%d CPU: nothing to split", len(cpus))
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return cpuSplit{}, fmt.Errorf("taskset not found (util-linux)")
	}
	var gen unix.CPUSet
	gen.Set(cpus[0])
	// Affinity is per thread: pin every thread the runtime has started;
	// threads started later inherit it from their creator.
	// threads started later inherit it from their creator. A second pass
	// catches a thread started during the first.
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return cpuSplit{}, err
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &gen); err != nil {
				return cpuSplit{}, err
			}
		}
	}
	runtime.GOMAXPROCS(1)
	servers := ""
	for i, c := range cpus[1:] {
		if i > 0 {
			servers += ","
		}
		servers += strconv.Itoa(c)
	}
	return cpuSplit{generator: strconv.Itoa(cpus[0]), servers: servers}, nil
}
