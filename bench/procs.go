//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of utime/stime in /proc/<pid>/stat. It is
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// server is one paynorm process started by the benchmark.
type server struct {
	name string
	cmd  *exec.Cmd
	port int
	log  string
}

func (s *server) pid() int     { return s.cmd.Process.Pid }
func (s *server) base() string { return "http://127.0.0.1:" + strconv.Itoa(s.port) }

// raiseNoFile lifts the soft open-files limit to the hard one: 5,000 requests
// in flight need ~5,000 sockets in the generator and ~10,000 in paynorm.
// Children inherit the raised limit.
func raiseNoFile() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// buildPaynorm compiles ./cmd/paynorm of the module in root into dir.
func buildPaynorm(root, dir string) (string, error) {
	bin := filepath.Join(dir, "paynorm")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/paynorm")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return bin, cmd.Run()
}

// moduleRoot is the directory of the enclosing go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("run the benchmark inside the paynorm module (go run ./bench)")
	}
	return filepath.Dir(gomod), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startServer runs `paynorm run` on a Caddyfile and waits for ready to answer.
func startServer(bin, dir, name, caddyfile string, port int, ready string) (*server, error) {
	conf := filepath.Join(dir, name+".Caddyfile")
	if err := os.WriteFile(conf, []byte(caddyfile), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Caddy's own state goes to the temp dir, never the user's home.
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	if name == "simulator" {
		// The simulator keeps every order of the run (hundreds of
		// thousands): under the binary's default memory limit its
		// collector would run without pause and slow every scenario.
		cmd.Env = append(cmd.Env, "GOMEMLIMIT=off")
	}
	// The servers die with the benchmark even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{name: name, cmd: cmd, port: port, log: logPath}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.base() + ready)
		if err == nil {
			resp.Body.Close()
			return s, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.stop()
	return nil, fmt.Errorf("%s did not come up on :%d; see %s", name, port, logPath)
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// cpuTime is utime+stime of pid, from /proc/<pid>/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; fields are counted after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	return time.Duration(ut+st) * clockTick, nil
}

// statusKB reads a "kB" line such as VmHWM or VmRSS from /proc/<pid>/status.
func statusKB(pid int, key string) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", key, pid)
}

// syncLatency times n rounds of a 4 KiB write and fdatasync in dir: an
// append (the file grows: a bbolt commit does two of these), or with
// overwrite a write into space written and synced before (what a journal
// group does, into its preallocated space).
func syncLatency(dir string, n int, overwrite bool) (sample, error) {
	f, err := os.CreateTemp(dir, "fsync-")
	if err != nil {
		return sample{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	page := make([]byte, 4096)
	if overwrite {
		// Space written and synced first, as the journal preallocates it.
		if _, err := f.WriteAt(make([]byte, n*4096), 0); err != nil {
			return sample{}, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return sample{}, err
		}
	}
	var rec recorder
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		if _, err := f.WriteAt(page, int64(i)*4096); err != nil {
			return sample{}, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return sample{}, err
		}
		rec.add(time.Since(t0), nil)
	}
	return rec.sample(time.Since(start)), nil
}

// binaryEnv is the value of key in the environment the paynorm binary runs
// with: what `paynorm environ` prints, after the binary's own defaults.
func binaryEnv(bin, key string) string {
	out, err := exec.Command(bin, "environ").Output()
	if err != nil {
		return "?"
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return v
		}
	}
	return "(unset)"
}

// resetPeakRSS sets pid's VmHWM back to its current RSS (Linux >= 4.0), so
// a later reading is the peak of what ran in between.
func resetPeakRSS(pid int) error {
	return os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0)
}

// machine describes the host for the figures table.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = ", loadavg " + strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return fmt.Sprintf("%s, %d CPUs (nproc), %s RAM%s", model, nproc(), mem, load)
}
