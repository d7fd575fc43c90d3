package redis

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Defaults of NewClient, also the bounds of the store's and bus's own
// commands (ioTimeout).
const (
	dialTimeout   = 2 * time.Second        // one connection attempt
	ioTimeout     = 2 * time.Second        // one command's read or write
	poolTimeout   = 3 * time.Second        // wait for a free pooled connection; > ioTimeout
	maxRetries    = 1                      // go-redis retries of a failed command
	dialAttempts  = 2                      // dial attempts per connection (go-redis: 5)
	dialRetryWait = 100 * time.Millisecond // between two dial attempts
)

// NewClient makes a client from a URL with timeouts fit for the hub, so
// that a call fails within about a second while Redis is down and answers
// "unavailable": 2 s to dial (2 attempts), 2 s per read or write, one retry
// (unless the URL sets them; go-redis's query options apply). Forms:
//
//	redis://[user:password@]host:port[/db][?options]   one server (also rediss://, unix://)
//	redis://[user:password@]host1:port1,host2:port2[,...][/db][?master_name=NAME]
//
// A comma-separated list of addresses is a Redis Cluster (its seed nodes);
// with master_name it is the list of Sentinels that watch the master of that
// name. The list form accepts only master_name and the timeouts
// dial_timeout, read_timeout and write_timeout (Go durations) as options.
// On a Cluster the store and bus use sharded pub/sub (Redis 7 or later).
func NewClient(rawURL string) (goredis.UniversalClient, error) {
	if !strings.Contains(rawURL, ",") {
		opt, err := goredis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("redis client: %w", err)
		}
		q := url.Values{}
		if u, err := url.Parse(rawURL); err == nil {
			q = u.Query()
		}
		if !q.Has("dial_timeout") {
			opt.DialTimeout = dialTimeout
		}
		if !q.Has("read_timeout") {
			opt.ReadTimeout = ioTimeout
		}
		if !q.Has("write_timeout") {
			opt.WriteTimeout = ioTimeout
		}
		if !q.Has("pool_timeout") {
			opt.PoolTimeout = poolTimeout
		}
		if !q.Has("max_retries") {
			opt.MaxRetries = maxRetries
		}
		opt.DialerRetries, opt.DialerRetryTimeout = dialAttempts, dialRetryWait
		opt.ContextTimeoutEnabled = true
		return goredis.NewClient(opt), nil
	}
	opt, err := parseList(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis client: %w", err)
	}
	return goredis.NewUniversalClient(opt), nil
}

// parseList parses the list form of NewClient's URL.
func parseList(rawURL string) (*goredis.UniversalOptions, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok || (scheme != "redis" && scheme != "rediss") {
		return nil, fmt.Errorf("address list %q: want redis:// or rediss://", rawURL)
	}
	// Split off the hosts by hand (net/url rejects a comma in the port),
	// then let net/url parse the rest around one placeholder host.
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	auth, hosts := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		auth, hosts = authority[:i+1], authority[i+1:]
	}
	u, err := url.Parse(scheme + "://" + auth + "placeholder" + tail)
	if err != nil {
		return nil, err
	}
	opt := &goredis.UniversalOptions{
		DialTimeout: dialTimeout, ReadTimeout: ioTimeout, WriteTimeout: ioTimeout,
		PoolTimeout: poolTimeout, MaxRetries: maxRetries, ContextTimeoutEnabled: true,
		DialerRetries: dialAttempts, DialerRetryTimeout: dialRetryWait,
	}
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			if !strings.Contains(h, ":") {
				h += ":6379"
			}
			opt.Addrs = append(opt.Addrs, h)
		}
	}
	if len(opt.Addrs) == 0 {
		return nil, fmt.Errorf("address list %q: no address", rawURL)
	}
	if u.User != nil {
		opt.Username = u.User.Username()
		opt.Password, _ = u.User.Password()
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if opt.DB, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("address list %q: database %q: %w", rawURL, p, err)
		}
	}
	for k, v := range u.Query() {
		val := v[len(v)-1]
		switch k {
		case "master_name":
			opt.MasterName = val
		case "dial_timeout", "read_timeout", "write_timeout":
			d, err := time.ParseDuration(val)
			if err != nil {
				return nil, fmt.Errorf("address list %q: %s: %w", rawURL, k, err)
			}
			switch k {
			case "dial_timeout":
				opt.DialTimeout = d
			case "read_timeout":
				opt.ReadTimeout = d
			default:
				opt.WriteTimeout = d
			}
		default:
			return nil, fmt.Errorf("address list %q: unknown option %q", rawURL, k)
		}
	}
	if opt.MasterName == "" && opt.DB != 0 {
		return nil, fmt.Errorf("address list %q: a Cluster has only database 0", rawURL)
	}
	if scheme == "rediss" {
		host, _, _ := net.SplitHostPort(opt.Addrs[0])
		opt.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return opt, nil
}
