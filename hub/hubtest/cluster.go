package hubtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clusterReadyTimeout bounds the wait for a new cluster to agree on its
// slots (cluster_state:ok on every node).
const clusterReadyTimeout = 20 * time.Second

// RedisCluster is a Redis Cluster of three masters without replicas, owned
// by one test: enough to exercise slot routing, cross-slot rules and sharded
// pub/sub.
type RedisCluster struct {
	// Nodes are the masters, in the order they were created.
	Nodes []*Redis
}

// StartRedisCluster runs three redis-server processes in cluster mode
// (each with the options of StartRedis), joins them with redis-cli
// --cluster create and waits until every node reports cluster_state:ok.
// Without redis-server or redis-cli the test is skipped, or fails when
// CI=true.
func StartRedisCluster(t testing.TB, opts ...Option) *RedisCluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("hubtest: redis-cli not found: %s", MissingRedis)
		}
		t.Skip("hubtest: redis-cli not found: " + MissingRedis)
	}
	c := &RedisCluster{}
	for range 3 {
		busPort, err := freePort()
		if err != nil {
			t.Fatalf("hubtest: %v", err)
		}
		nodeOpts := append(append([]Option(nil), opts...), WithArgs(
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(busPort),
			"--cluster-node-timeout", "5000",
		))
		c.Nodes = append(c.Nodes, StartRedis(t, nodeOpts...))
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("hubtest: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(clusterReadyTimeout)
	for _, n := range c.Nodes {
		for {
			info, err := command(n.Addr(), "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("hubtest: cluster not ready after %s: %v %q", clusterReadyTimeout, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// Addrs are the nodes' host:port addresses.
func (c *RedisCluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// URL is the cluster as a comma-separated address list,
// redis://host1:port1,host2:port2,host3:port3 (the form redis.NewClient
// takes for a Cluster).
func (c *RedisCluster) URL() string { return "redis://" + strings.Join(c.Addrs(), ",") }

// command sends one command in the Redis protocol and answers a simple or
// bulk string reply.
func command(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, pingTimeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(pingTimeout))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	rd := bufio.NewReader(conn)
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"):
		return line[1:], nil
	case strings.HasPrefix(line, "-"):
		return "", errors.New(line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("bad bulk length %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}
