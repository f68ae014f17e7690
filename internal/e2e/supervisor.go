package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec describes how to start one supervised process and how to know it is ready.
type Spec struct {
	Name  string                          // unique: "order-worker-2", "redis", ...
	Group string                          // what chaos steps target: "order-worker", "redis", ...
	Cmd   func() *exec.Cmd                // a fresh command for every start
	Ready func(ctx context.Context) error // nil: started is ready
	// Line, when set, sees every line the process writes to stdout (after it is logged).
	Line func(string)
}

// Proc is one supervised OS process. Kill sends a real SIGKILL.
type Proc struct {
	spec     Spec
	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	expected bool // the current process is being stopped or killed on purpose
	starts   int
}

// Event is something that happened to a supervised process.
type Event struct {
	At     time.Time `json:"at"`
	Proc   string    `json:"proc"`
	What   string    `json:"what"` // started, stopped, killed, exited
	Detail string    `json:"detail,omitempty"`
}

// Supervisor starts, stops, kills and restarts the processes of one run. Every process it
// starts is its own child; it never signals anything else.
type Supervisor struct {
	logDir string
	mu     sync.Mutex
	procs  map[string]*Proc
	events []Event
}

// NewSupervisor keeps each process's output in logDir/<name>.log.
func NewSupervisor(logDir string) (*Supervisor, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	return &Supervisor{logDir: logDir, procs: map[string]*Proc{}}, nil
}

func (s *Supervisor) record(proc, what, detail string) {
	s.mu.Lock()
	s.events = append(s.events, Event{At: time.Now(), Proc: proc, What: what, Detail: detail})
	s.mu.Unlock()
}

// Events returns what happened so far, in order.
func (s *Supervisor) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// UnexpectedExits lists processes that ended without being stopped or killed by the run.
func (s *Supervisor) UnexpectedExits() []Event {
	var out []Event
	for _, e := range s.Events() {
		if e.What == "exited" {
			out = append(out, e)
		}
	}
	return out
}

// Start starts a new process from spec and waits until it is ready.
func (s *Supervisor) Start(ctx context.Context, spec Spec) (*Proc, error) {
	s.mu.Lock()
	if _, ok := s.procs[spec.Name]; ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("process %s already exists", spec.Name)
	}
	p := &Proc{spec: spec}
	s.procs[spec.Name] = p
	s.mu.Unlock()
	return p, s.launch(ctx, p)
}

func (s *Supervisor) launch(ctx context.Context, p *Proc) error {
	cmd := p.spec.Cmd()
	logf, err := os.OpenFile(filepath.Join(s.logDir, p.spec.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== %s start %s\n", time.Now().UTC().Format(time.RFC3339Nano), strings.Join(cmd.Args, " "))
	cmd.Stderr = logf
	var pr *io.PipeReader
	if p.spec.Line != nil {
		var pw *io.PipeWriter
		pr, pw = io.Pipe()
		cmd.Stdout = pw
		go func() {
			sc := bufio.NewScanner(pr)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				fmt.Fprintln(logf, sc.Text())
				p.spec.Line(sc.Text())
			}
			_, _ = io.Copy(io.Discard, pr)
		}()
	} else {
		cmd.Stdout = logf
	}
	// Its own process group, so a Ctrl-C of the run does not reach it before the run stops it.
	cmd.SysProcAttr = mergeSysProcAttr(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.spec.Name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.expected = cmd, done, false
	p.starts++
	p.mu.Unlock()
	s.record(p.spec.Name, "started", fmt.Sprintf("pid %d", cmd.Process.Pid))
	go func() {
		werr := cmd.Wait()
		if w, ok := cmd.Stdout.(*io.PipeWriter); ok {
			w.Close()
		}
		fmt.Fprintf(logf, "=== %s exit %v\n", time.Now().UTC().Format(time.RFC3339Nano), werr)
		logf.Close()
		p.mu.Lock()
		expected := p.expected
		p.mu.Unlock()
		if !expected {
			s.record(p.spec.Name, "exited", fmt.Sprint(werr))
		}
		close(done)
	}()
	if p.spec.Ready != nil {
		rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- p.spec.Ready(rctx) }()
		select {
		case err := <-errc:
			if err != nil {
				return fmt.Errorf("%s not ready (log %s): %w", p.spec.Name, filepath.Join(s.logDir, p.spec.Name+".log"), err)
			}
		case <-done:
			return fmt.Errorf("%s exited before it was ready (log %s)", p.spec.Name, filepath.Join(s.logDir, p.spec.Name+".log"))
		}
	}
	return nil
}

func mergeSysProcAttr(a *syscall.SysProcAttr) *syscall.SysProcAttr {
	if a == nil {
		a = &syscall.SysProcAttr{}
	}
	a.Setpgid = true
	a.Pdeathsig = syscall.SIGKILL // nothing outlives a crashed run
	return a
}

// Get returns the named process.
func (s *Supervisor) Get(name string) (*Proc, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.procs[name]
	return p, ok
}

// Group returns the processes of a group that are running, by name.
func (s *Supervisor) Group(group string) []*Proc {
	s.mu.Lock()
	var out []*Proc
	for _, p := range s.procs {
		if p.spec.Group == group && p.Running() {
			out = append(out, p)
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].spec.Name < out[j].spec.Name })
	return out
}

// Remove forgets a stopped process (a replica scaled away).
func (s *Supervisor) Remove(name string) {
	s.mu.Lock()
	delete(s.procs, name)
	s.mu.Unlock()
}

// Name is the process's name.
func (p *Proc) Name() string { return p.spec.Name }

// PID is the current OS process id (0 when not running).
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the current process has not ended.
func (p *Proc) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process (not its group: Postgres children are its own business) and
// waits up to wait for it to end; after that it is killed.
func (s *Supervisor) Signal(p *Proc, sig syscall.Signal, wait time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if done == nil {
		p.mu.Unlock()
		return nil
	}
	p.expected = true
	p.mu.Unlock()
	select {
	case <-done:
		return nil
	default:
	}
	what := "stopped"
	if sig == syscall.SIGKILL {
		what = "killed"
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", p.spec.Name, err)
	}
	select {
	case <-done:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
		what += " (killed after " + wait.String() + ")"
	}
	s.record(p.spec.Name, what, sig.String())
	return nil
}

// Stop ends the process gracefully (SIGTERM; SIGKILL after 30s).
func (s *Supervisor) Stop(p *Proc) error { return s.Signal(p, syscall.SIGTERM, 30*time.Second) }

// Kill ends the process with SIGKILL (kill -9): no shutdown code runs.
func (s *Supervisor) Kill(p *Proc) error { return s.Signal(p, syscall.SIGKILL, 10*time.Second) }

// Restart starts the (ended) process again with the same spec and waits until it is ready.
func (s *Supervisor) Restart(ctx context.Context, p *Proc) error {
	if p.Running() {
		return fmt.Errorf("%s is still running", p.spec.Name)
	}
	return s.launch(ctx, p)
}

// StopAll stops every process, newest group first as given by order (names not listed last).
func (s *Supervisor) StopAll(order []string) {
	s.mu.Lock()
	procs := make([]*Proc, 0, len(s.procs))
	for _, p := range s.procs {
		procs = append(procs, p)
	}
	s.mu.Unlock()
	rank := func(p *Proc) int {
		for i, g := range order {
			if p.spec.Group == g {
				return i
			}
		}
		return len(order)
	}
	sort.SliceStable(procs, func(i, j int) bool { return rank(procs[i]) < rank(procs[j]) })
	var wg sync.WaitGroup
	cur := -1
	for _, p := range procs {
		if r := rank(p); r != cur {
			wg.Wait()
			cur = r
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = s.Stop(p)
		}()
	}
	wg.Wait()
}
