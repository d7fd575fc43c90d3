package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync/atomic"
	"time"
)

// workerStopTimeout bounds how long a worker may take to close its
// connections and exit after the close order; then it is killed.
const workerStopTimeout = closeTimeout + 5*time.Second

// pool is the worker processes of one scenario. Worker i holds attendees
// first[i] to first[i]+count[i]-1 (global indexes).
type pool struct {
	procs []*workerProc
	first []int
	count []int
	total int
}

// workerProc is one worker process: orders go to its stdin, replies come
// from its stdout. Its reader goroutine keeps the newest figures in last
// and hands every answer to replies.
type workerProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	enc     *json.Encoder
	replies chan reply
	last    atomic.Pointer[reply]
	exited  chan struct{}
}

// startPool starts enough workers for total attendees, at most perWorker
// each, spread evenly. They live at most lifetime.
func startPool(total, perWorker int, lifetime time.Duration, profileDir string, stderr io.Writer) (*pool, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable for workers: %w", err)
	}
	n := (total + perWorker - 1) / perWorker
	p := &pool{total: total}
	next := 0
	for i := range n {
		count := total / n
		if i < total%n {
			count++
		}
		wp, err := startWorker(exe, lifetime, profileDir, stderr)
		if err != nil {
			p.stop()
			return nil, fmt.Errorf("start worker %d: %w", i, err)
		}
		p.procs = append(p.procs, wp)
		p.first = append(p.first, next)
		p.count = append(p.count, count)
		next += count
	}
	return p, nil
}

func startWorker(exe string, lifetime time.Duration, profileDir string, stderr io.Writer) (*workerProc, error) {
	// Not CommandContext: the pool stops its workers itself, politely
	// first, so that the server sees normal closes.
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), workerEnv+"="+lifetime.String())
	if profileDir != "" {
		cmd.Env = append(cmd.Env, workerProfileEnv+"="+profileDir)
	}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	wp := &workerProc{cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin), replies: make(chan reply, 16), exited: make(chan struct{})}
	go func() {
		defer close(wp.exited)
		dec := json.NewDecoder(stdout)
		for {
			var r reply
			if err := dec.Decode(&r); err != nil {
				_ = cmd.Wait()
				return
			}
			wp.last.Store(&r)
			if r.Op != opProgress {
				select {
				case wp.replies <- r:
				default: // nobody asked: a late answer to an order given up on
				}
			}
		}
	}()
	return wp, nil
}

// ask sends orders[i] to worker i and waits, at most timeout, for each
// worker's answer.
func (p *pool) ask(ctx context.Context, orders []order, timeout time.Duration) ([]reply, error) {
	for i, wp := range p.procs {
		// Drop answers left over from an order given up on.
		for len(wp.replies) > 0 {
			<-wp.replies
		}
		if err := wp.enc.Encode(orders[i]); err != nil {
			return nil, fmt.Errorf("worker %d: send %s: %w", i, orders[i].Op, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out := make([]reply, len(p.procs))
	var errs []error
	for i, wp := range p.procs {
		select {
		case r := <-wp.replies:
			switch {
			case r.Op == opFailed:
				errs = append(errs, fmt.Errorf("worker %d: %s", i, r.Err))
			case r.Op != orders[i].Op:
				errs = append(errs, fmt.Errorf("worker %d: answered %s to %s", i, r.Op, orders[i].Op))
			}
			out[i] = r
		case <-wp.exited:
			errs = append(errs, fmt.Errorf("worker %d exited during %s", i, orders[i].Op))
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("worker %d: no answer to %s: %w", i, orders[i].Op, ctx.Err()))
		}
	}
	return out, errors.Join(errs...)
}

// each builds one order per worker.
func (p *pool) each(f func(i int) order) []order {
	out := make([]order, len(p.procs))
	for i := range p.procs {
		out[i] = f(i)
	}
	return out
}

// figures sums the newest figures of every worker, for the progress line.
func (p *pool) figures() reply {
	var sum reply
	for _, wp := range p.procs {
		r := wp.last.Load()
		if r == nil {
			continue
		}
		sum.Connected += r.Connected
		sum.Closed += r.Closed
		sum.Frames += r.Frames
		sum.Bytes += r.Bytes
		sum.Answered += r.Answered
		sum.Reached += r.Reached
		sum.Received += r.Received
	}
	return sum
}

// stop tells every worker to close its connections and exit, and kills
// those that do not within workerStopTimeout.
func (p *pool) stop() {
	for _, wp := range p.procs {
		_ = wp.enc.Encode(order{Op: opClose})
		_ = wp.stdin.Close()
	}
	deadline := time.Now().Add(workerStopTimeout)
	for _, wp := range p.procs {
		select {
		case <-wp.exited:
		case <-time.After(time.Until(deadline)):
			_ = wp.cmd.Process.Kill()
			<-wp.exited
		}
	}
}
