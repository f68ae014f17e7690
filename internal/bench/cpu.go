package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc (100 on every Linux platform Go
// supports).
const clockTicks = 100

// cpuSample is a reading of where the machine's CPU time has gone so far, in clock ticks.
type cpuSample struct {
	at       time.Time
	busy     uint64 // every CPU, every state but idle and iowait
	irq      uint64 // every CPU, hardware and soft interrupts (loopback networking lands here)
	total    uint64
	self     uint64 // this process: load generator, servers under test, kfake
	postgres uint64 // every process named postgres
	redis    uint64 // every process named redis-server
	ok       bool   // false where /proc is unreadable: the usage is then unknown
}

// cpuUse is the average CPU used during a run, in cores.
type cpuUse struct {
	known    bool
	secs     float64 // wall time measured
	machine  float64 // every process on the machine
	self     float64
	postgres float64
	redis    float64
	irq      float64 // kernel interrupt handling, not charged to any process
	other    float64 // machine - (self + postgres + redis + irq): other processes
}

// sampleCPU reads /proc/stat and the stat file of every process.
func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now()}
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	busy, irq, total, ok := parseProcStat(stat)
	if !ok {
		return s
	}
	s.busy, s.irq, s.total = busy, irq, total
	self := os.Getpid()
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return s
	}
	for _, dir := range dirs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil {
			continue
		}
		b, err := os.ReadFile(dir + "/stat") // the process may have exited: skip it
		if err != nil {
			continue
		}
		comm, ticks, ok := parsePidStat(b)
		if !ok {
			continue
		}
		switch {
		case pid == self:
			s.self += ticks
		case comm == "postgres":
			s.postgres += ticks
		case comm == "redis-server":
			s.redis += ticks
		}
	}
	s.ok = true
	return s
}

// until returns the CPU used from s to later, in cores.
func (s cpuSample) until(later cpuSample) cpuUse {
	secs := later.at.Sub(s.at).Seconds()
	if !s.ok || !later.ok || secs <= 0 || later.total <= s.total {
		return cpuUse{}
	}
	cores := func(a, b uint64) float64 {
		if b < a { // a process was counted in one sample only
			return 0
		}
		return float64(b-a) / clockTicks / secs
	}
	// /proc/stat counts every CPU: its busy share of total times the CPU count is cores busy.
	ncpu := float64(later.total-s.total) / clockTicks / secs
	u := cpuUse{
		known:    true,
		secs:     secs,
		machine:  float64(later.busy-s.busy) / float64(later.total-s.total) * ncpu,
		self:     cores(s.self, later.self),
		postgres: cores(s.postgres, later.postgres),
		redis:    cores(s.redis, later.redis),
		irq:      float64(later.irq-s.irq) / float64(later.total-s.total) * ncpu,
	}
	u.other = max(u.machine-u.self-u.postgres-u.redis-u.irq, 0)
	return u
}

// perOrder is the CPU time the arm used per accepted order: everything but other processes
// (this process, Postgres, Redis and kernel interrupts).
func (u cpuUse) perOrder(orders int) (time.Duration, bool) {
	if !u.known || orders <= 0 {
		return 0, false
	}
	return time.Duration((u.machine - u.other) * u.secs / float64(orders) * float64(time.Second)), true
}

// parseProcStat reads the aggregate "cpu" line of /proc/stat: user nice system idle iowait irq
// softirq steal (guest time is already part of user).
func parseProcStat(b []byte) (busy, irq, total uint64, ok bool) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, 0, false
	}
	var v [8]uint64
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return 0, 0, 0, false
		}
		v[i] = n
		total += n
	}
	idle := v[3] + v[4]
	return total - idle, v[5] + v[6], total, true
}

// parsePidStat reads the command name and utime+stime of /proc/<pid>/stat. The name is in
// parentheses and may itself contain spaces and parentheses, so fields are counted after the
// last ')'.
func parsePidStat(b []byte) (comm string, ticks uint64, ok bool) {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return "", 0, false
	}
	comm = string(b[open+1 : closing])
	f := strings.Fields(string(b[closing+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return "", 0, false
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, false
	}
	return comm, ut + st, true
}

// String renders the usage for a table cell.
func (u cpuUse) String() string {
	if !u.known {
		return "n/a"
	}
	return fmt.Sprintf("%.2f = %.2f + %.2f + %.2f + %.2f + %.2f", u.machine, u.self, u.postgres, u.redis, u.irq, u.other)
}
