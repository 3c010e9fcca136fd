package main

import (
	"os"
	"runtime/debug"
	"strconv"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// defaultMemoryLimit is the Go soft memory limit paynorm runs with when the
// operator sets none. A sidecar shares its host with the app, so its
// footprint should stay bounded. Without a limit the GC lets the heap grow
// to twice what is live, and the bench's burst of 5,000 slow payments
// peaked at 376-410 MB RSS, although ~240 MB of it is live: goroutine
// stacks and per-connection buffers, nearly all of them net/http's. With the
// limit the GC runs more often during such a burst (it drained in ~9 s
// instead of ~7.5 s) and the peak was 270-295 MB (the limit plus ~50 MB of
// binary and mapped store file that the limit does not count); below the
// limit nothing changes. It is a soft limit: a process that really needs
// more gets more, with the GC's CPU share capped at 50%.
const defaultMemoryLimit = 224 << 20

// applyDefaultMemoryLimit sets defaultMemoryLimit unless the operator chose
// a limit: GOMEMLIMIT (any value, "off" included), AUTOMEMLIMIT, or a
// cgroup memory limit, from which Caddy derives one itself (90%). It sets
// GOMEMLIMIT in the environment too, so Caddy's start-up leaves it alone and
// `paynorm environ` shows it. It returns whether it set the default.
func applyDefaultMemoryLimit(lookup func(string) (string, bool), cgroupLimit func() (uint64, error), setenv func(string, string) error) bool {
	for _, v := range []string{"GOMEMLIMIT", "AUTOMEMLIMIT"} {
		if _, ok := lookup(v); ok {
			return false
		}
	}
	if limit, err := cgroupLimit(); err == nil && limit > 0 {
		return false
	}
	if err := setenv("GOMEMLIMIT", strconv.Itoa(defaultMemoryLimit>>20)+"MiB"); err != nil {
		return false
	}
	debug.SetMemoryLimit(defaultMemoryLimit)
	return true
}

func setDefaultMemoryLimit() {
	applyDefaultMemoryLimit(os.LookupEnv, memlimit.FromCgroup, os.Setenv)
}
