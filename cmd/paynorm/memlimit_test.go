package main

import (
	"errors"
	"os"
	"os/exec"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

func TestDefaultMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	noCgroup := func() (uint64, error) { return 0, errors.New("memory is not limited") }
	cases := []struct {
		name   string
		env    map[string]string
		cgroup func() (uint64, error)
		want   bool
	}{
		{"nothing set", nil, noCgroup, true},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB"}, noCgroup, false},
		{"GOMEMLIMIT off", map[string]string{"GOMEMLIMIT": "off"}, noCgroup, false},
		{"AUTOMEMLIMIT set", map[string]string{"AUTOMEMLIMIT": "0.5"}, noCgroup, false},
		{"container limit", nil, func() (uint64, error) { return 512 << 20, nil }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetMemoryLimit(prev)
			set := map[string]string{}
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			setenv := func(k, v string) error { set[k] = v; return nil }
			got := applyDefaultMemoryLimit(lookup, tc.cgroup, setenv)
			if got != tc.want {
				t.Fatalf("applied = %v, want %v", got, tc.want)
			}
			limit := debug.SetMemoryLimit(-1)
			if tc.want {
				if set["GOMEMLIMIT"] != "224MiB" || limit != 224<<20 {
					t.Fatalf("GOMEMLIMIT env %q, runtime limit %d; want 224MiB both", set["GOMEMLIMIT"], limit)
				}
			} else if len(set) != 0 || limit != prev {
				t.Fatalf("an operator's choice was overridden: env %v, limit %d (was %d)", set, limit, prev)
			}
		})
	}
}

// The built binary applies the default before Caddy starts, and an
// operator's GOMEMLIMIT is left alone.
func TestBinaryMemoryLimit(t *testing.T) {
	if limit, err := memlimit.FromCgroup(); err == nil && limit > 0 {
		t.Skip("this machine has a cgroup memory limit: Caddy derives GOMEMLIMIT from it")
	}
	bin := build(t)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMEMLIMIT=") && !strings.HasPrefix(kv, "AUTOMEMLIMIT=") {
			env = append(env, kv)
		}
	}
	for _, tc := range []struct{ set, want string }{{"", "GOMEMLIMIT=224MiB"}, {"GOMEMLIMIT=1GiB", "GOMEMLIMIT=1GiB"}} {
		cmd := exec.Command(bin, "environ")
		cmd.Env = env
		if tc.set != "" {
			cmd.Env = append(slices.Clone(env), tc.set)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("environ: %v\n%s", err, out)
		}
		if !slices.Contains(strings.Split(string(out), "\n"), tc.want) {
			t.Errorf("with %q set, environ lacks %s", tc.set, tc.want)
		}
	}
}
